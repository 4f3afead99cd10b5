"""The steps of one distil round, each a few calls: what to ask, the dataset version, training, judging.

Kept out of ``flows/distill_round.py`` so that the round reads as its table of contents.
"""

from __future__ import annotations

from pathlib import Path

from flows.evaluate import evaluate
from flows.handoff import train_student
from tasks.distill import student_doubts
from vqa_distill.loop.doubt import most_doubted
from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.plan import AskGroup, first_round, later_round, random_round
from vqa_distill.loop.state import HOLDOUT_FILE, LoopState, round_dir
from vqa_distill.loop.targets import losses_of, targeted_units
from vqa_distill.student.handoff import HandOff
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.student.judged.report import EVAL_JSON, EvalOutcome
from vqa_distill.teacher.images.discovery import ImageRef, discover_images
from vqa_distill.teacher.ledger.records import Ledger

EVAL_DIR, PROBE_DIR, DOUBT_DIR, DATASET_DIR = "eval", "probe", "doubt", "dataset"


def images_by_sha(params: DistillParams, ledger: Ledger, out: Path) -> dict[str, ImageRef]:
    """The folder's images by content (the first file of each), hashes cached in the ledger."""
    hashes = ledger.hash_cache()
    found, _skipped = discover_images(params.teacher.images, known_hash=hashes, run_folder=out)
    ledger.remember_hashes(hashes.changed((r.path, r.size_bytes, r.mtime_ns, r.sha256) for r in found))
    by_sha: dict[str, ImageRef] = {}
    for ref in found:
        by_sha.setdefault(ref.sha256, ref)
    return by_sha


def round_groups(params: DistillParams, state: LoopState, number: int, images: dict[str, ImageRef], out: Path) -> list[AskGroup]:
    """Round 0: held-out and seed. Later: targeted questions from the last round's losses, then doubted images."""
    if number == 0:
        return first_round(state.split.holdout, state.split.seed, images, params.teacher)
    pool = sorted(sha for sha in state.split.pool if sha in images and sha not in state.asked_images())
    if params.selection == "random":
        return random_round(pool, images, params.teacher, count=params.targeted_items + params.doubt_images,
                            seed=params.seed + number)  # fmt: skip
    last = round_dir(out, number - 1)
    lost = losses_of(last / PROBE_DIR / EVAL_JSON, held_out=False) + losses_of(last / EVAL_DIR / EVAL_JSON, held_out=True)
    training = [sha for sha in state.split.training() if sha in state.asked_images()]
    targeted = targeted_units(lost, images, sorted(training), limit=params.targeted_items, seed=params.seed + number,
                              asked_before=state.targeted_before())  # fmt: skip
    doubted: list[str] = []
    if pool and params.doubt_images and state.last and state.last.checkpoint:
        prompt = params.teacher.all_prompts()[0]
        checkpoint = state.last.checkpoint
        doubts = student_doubts(pool, images, prompt, checkpoint, judge_params(params, "", checkpoint, out),
                                round_dir(out, number) / DOUBT_DIR)  # fmt: skip
        doubted = most_doubted(doubts, params.doubt_images)
    return later_round(targeted, doubted, images, params.teacher, targeted_questions=params.targeted_questions)


def judge_params(params: DistillParams, dataset: str, checkpoint: str | None, out: Path, **extra: object) -> EvalParams:
    """An evaluation of the loop: the teacher's endpoint judges (its model unless told), the student on its devices."""
    teacher, student = params.teacher, params.student
    return EvalParams(
        dataset=dataset or str(out / HOLDOUT_FILE), checkpoint=checkpoint, out=str(out), compare_base=False,
        rubric=False, judge_model=params.judge_model or teacher.model, base_url=teacher.base_url,
        api_key_block=teacher.api_key_block, rpm=params.judge_rpm or teacher.rpm, tpm=params.judge_tpm or teacher.tpm,
        concurrency=teacher.concurrency, max_new_tokens=params.eval_max_new_tokens, cuda_devices=student.cuda_devices,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


async def train_round(params: DistillParams, train_file: Path, folder: Path, previous: str | None) -> str:
    """Fine-tune on this round's dataset version, from the last round's checkpoint (its adapter, or its weights)."""
    options = params.student.model_copy(update={"eval_limit": 0})
    if previous is not None:
        if options.tuner == "full":
            options = options.model_copy(update={"model_id_or_path": previous})
        else:
            options = options.model_copy(update={"swift_args": [*options.swift_args, "--adapters", previous]})
    outcome = await train_student(options.for_dataset(str(train_file), None, str(folder)), HandOff(in_process=True))
    if outcome.checkpoint is None:
        raise RuntimeError("training returned no checkpoint")
    return outcome.checkpoint


async def judge_round(params: DistillParams, checkpoint: str, holdout: Path, probe: Path | None, folder: Path) -> EvalOutcome:
    """Judge the held-out rows (the curve), then a probe of training rows (the next round's targets)."""
    held = await evaluate(judge_params(params, str(holdout), checkpoint, folder / EVAL_DIR,
                                       base_model=params.student.model_id_or_path))  # fmt: skip
    if probe is not None:
        await evaluate(judge_params(params, str(probe), checkpoint, folder / PROBE_DIR, limit=params.probe_rows))
    return held
