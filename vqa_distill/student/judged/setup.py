"""Everything an evaluation settles before it spends anything: the cases, the folders, the checkpoint, the judge.

Bad input stops here, in one plain line: a missing dataset or answers file, a checkpoint without its
args.json, neither a checkpoint nor an answers file. The judge's parameters are a ``TeacherParams``: its
requests go through the same client, rate gate and ledger as the teacher's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.dataset.build import STATS_FILE
from vqa_distill.errors import ConfigError
from vqa_distill.student.judged.cases import EvalCase, load_cases
from vqa_distill.student.judged.inference import TrainedWith
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.teacher.params import DEFAULT_MODEL, TeacherParams

JUDGED_DIR = "eval-judged"
JUDGE_MAX_TOKENS = 400  # a verdict and a sentence of reason; caps what a verbose judge can cost


@dataclass(frozen=True)
class EvalSetup:
    """The cases, where the report (and the judge's ledger) goes, how the student was trained, and the judge."""

    cases: list[EvalCase]
    out: Path
    trained: TrainedWith | None
    judge: TeacherParams


def prepare_eval(params: EvalParams) -> EvalSetup:
    """Read the cases and settle the folders and the judge; ConfigError on anything a user must fix."""
    dataset = Path(params.dataset).expanduser()
    if params.checkpoint is None and params.answers_file is None:
        raise ConfigError("nothing to judge: pass --checkpoint (the student) or --answers-file (its answers)")
    trained = TrainedWith.read(Path(params.checkpoint).expanduser()) if params.checkpoint else None
    cases = load_cases(dataset, limit=params.limit, system=trained.system if trained else None)
    if not cases:
        raise ConfigError(f"{dataset} holds no row to judge (one image, ending with the teacher's answer)")
    if params.answers_file is not None and not Path(params.answers_file).expanduser().is_file():
        raise ConfigError(f"no answers file at {params.answers_file}")
    out = Path(params.out).expanduser() if params.out else default_out(params)
    teacher_model, teacher_url = teacher_of(dataset)
    judge = TeacherParams(
        images=str(dataset.parent),
        out=str(out),
        model=params.judge_model or teacher_model or DEFAULT_MODEL,
        base_url=params.base_url or teacher_url,
        api_key_block=params.api_key_block,
        rpm=params.rpm,
        tpm=params.tpm,
        concurrency=params.concurrency,
        batch=params.batch,
        temperature=0.0,  # the same pair should get the same verdict
        max_tokens=JUDGE_MAX_TOKENS,
    )
    return EvalSetup(cases=cases, out=out, trained=trained, judge=judge)


def default_out(params: EvalParams) -> Path:
    """``eval-judged-<checkpoint>`` beside the checkpoint, else ``eval-judged`` beside the answers file."""
    if params.checkpoint:
        checkpoint = Path(params.checkpoint).expanduser().resolve()
        return checkpoint.parent / f"{JUDGED_DIR}-{checkpoint.name}"
    return Path(params.answers_file or params.dataset).expanduser().resolve().parent / JUDGED_DIR


def teacher_of(dataset: Path) -> tuple[str | None, str | None]:
    """The model and endpoint that wrote ``dataset``, from its run folder's dataset_stats.json (None: unknown).

    A masked endpoint (it held a password) is no endpoint to call: then only the model is taken.
    """
    stats = dataset.parent / STATS_FILE
    if not stats.is_file():
        return None, None
    try:
        data = json.loads(stats.read_text(encoding="utf-8"))
    except ValueError:
        return None, None
    url = data.get("teacher_base_url")
    return data.get("teacher_model"), (url if url and "***" not in url else None)
