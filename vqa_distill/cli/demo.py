"""``vqa-distill demo``: the whole DAG on the embedded default, on a laptop, with no network.

The offline teacher server stands in for GPT-4o, a tiny Qwen2.5-VL (random weights, built in
seconds) stands in for the student, and Prefect runs locally (a temporary server unless
PREFECT_API_URL points at one). The point is to see every stage, artifact and file that a real run
makes, in a few minutes on a 2-core CPU, before spending money or GPU hours, and to see the student
learn: it is fully fine-tuned on 9 images until it answers the 3 held-out ones like the teacher
does, and the run ends with its ROUGE-L beside the untrained base model's and the loss curve's ends,
then with the judged verdict: the ``evaluate`` flow, the offline teacher judging each held-out answer
against the teacher's and the base model's in both orders (reproducible: it judges from what it
measures in each picture).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vqa_distill.cli.prefect_api import use_prefect_api
from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, FatalRunError
from vqa_distill.flow_state import run_flow
from vqa_distill.paths import REPO_DATA

if TYPE_CHECKING:
    from vqa_distill.student.evaluate import EvalReport

DEMO_API_KEY = "sk-offline-demo"  # the offline teacher accepts any key; the user's real key stays unused
# The demo's student: 4x wider than the tests' tiny model, and a tokenizer with English merges, so that an
# answer of ~330 characters is ~110 tokens (one per byte before) and 120 steps teach it its template.
DEMO_HIDDEN = 128
DEMO_LAYERS = 2
DEMO_MERGES = 8000  # asked for; Python 3.11's documentation yields 6,445 (pairs seen twice or more)
DEMO_STEPS = 120
DEMO_LEARNING_RATE = 4e-3  # full tuning of random weights: 6e-3 stalls at loss 2.7, 3e-3 needs 150+ steps
DEMO_MAX_PIXELS = 128 * 128  # ~20 image tokens: rows stay under 200 tokens
DEMO_ANSWER_TOKENS = 160  # the teacher's answers are 100-120 tokens with this tokenizer
EXAMPLE_CHARS = 110  # the closing example's answers are cut to this length


def register(subparsers: Any) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline: sample images -> offline teacher -> dataset -> tiny model on CPU",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images", default=str(REPO_DATA / "images"), help="image folder (default: the samples)"
    )
    parser.add_argument(
        "--prompt-file",
        default=str(REPO_DATA / "demo_prompts.txt"),
        help="prompts, one per line (default: one question whose answer a tiny model can learn)",
    )
    parser.add_argument("--out", default=str(REPO_DATA / "runs" / "demo"), help="run folder")
    parser.add_argument(
        "--model-dir",
        default=str(REPO_DATA / "models" / "tiny-qwen2.5-vl-demo"),
        help=f"tiny student model folder (built when missing: hidden {DEMO_HIDDEN}, "
        f"{DEMO_LAYERS} layers, up to {DEMO_MERGES} BPE merges)",
    )
    parser.add_argument("--latency", type=float, default=0.2, help="offline teacher latency per answer (s)")
    parser.add_argument("--max-steps", type=int, default=DEMO_STEPS, help="training steps on the CPU")
    parser.add_argument("--no-train", action="store_true", help="stop after the dataset")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Build the tiny model if needed, start the offline teacher, run the pipeline flow in-process."""
    os.environ["OPENAI_API_KEY"] = DEMO_API_KEY
    try:
        use_prefect_api()
    except FatalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL

    from flows.pipeline import PipelineResult, pipeline
    from vqa_distill.offline_teacher.process import running_teacher_server
    from vqa_distill.student.handoff import HandOff, StudentOptions
    from vqa_distill.student.tiny_model import build_tiny_model
    from vqa_distill.teacher.params import TeacherParams

    started = time.monotonic()
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        print(f"building the tiny student model in {model_dir} ...", flush=True)
        build_tiny_model(model_dir, hidden=DEMO_HIDDEN, layers=DEMO_LAYERS, merges=DEMO_MERGES)
    with running_teacher_server(latency_s=args.latency) as server:
        print(f"offline teacher at {server.base_url}", flush=True)
        teacher = TeacherParams(
            images=args.images,
            out=args.out,
            prompt_file=args.prompt_file,
            base_url=server.base_url,
            model="gpt-4o-mini",
            val_ratio=0.25,
            retry_delay=0.2,
            rpm=6000,
            tpm=10_000_000,  # the offline teacher has no limits; GPT-4o-mini's would pace 12 images
        )
        # Full tuning (every weight, the embedding included), one row a step, a short warm-up; only the
        # model is saved (no optimizer state: 160 MB the demo never resumes from).
        student = StudentOptions(
            model_id_or_path=str(model_dir),
            cuda_devices="cpu",
            max_steps=args.max_steps,
            tuner="full",
            learning_rate=DEMO_LEARNING_RATE,
            gradient_accumulation_steps=1,
            num_proc=1,
            max_length=1024,
            logging_steps=5,
            eval_limit=3,
            eval_max_new_tokens=DEMO_ANSWER_TOKENS,
            max_pixels=DEMO_MAX_PIXELS,
            swift_args=["--warmup_ratio", "0.1", "--save_only_model", "true"],
        )
        run = run_flow(
            pipeline(teacher, student, train=not args.no_train, hand_off=HandOff(in_process=True),
                     return_state=True)
        )  # fmt: skip
        result = run.result
        if isinstance(result, BaseException):
            print(f"error: {result}", file=sys.stderr)
            return EXIT_FATAL
        outcome = PipelineResult.model_validate(result)
        judged = None
        if outcome.training and outcome.training.checkpoint and outcome.teacher.dataset:
            judged = judge_student(
                outcome.training.checkpoint, outcome.teacher.dataset.val_path, server.base_url
            )
    dataset = outcome.teacher.dataset
    print(
        f"\nteacher: {outcome.teacher.answered_now} answered now, {outcome.teacher.already_answered} already "
        f"answered, {outcome.teacher.failed} failed"
    )
    if dataset:
        print(f"dataset: {dataset.train_path} ({dataset.train_rows} rows), val {dataset.val_rows} rows")
    if outcome.training and outcome.training.checkpoint:
        print(f"student: {outcome.training.checkpoint}")
        print_scores(Path(outcome.training.checkpoint).parent)
    if judged is not None:
        print(judged)
    print(f"demo took {_minutes(time.monotonic() - started)}")
    return EXIT_SOME_FAILED if outcome.teacher.failed else EXIT_OK


def judge_student(checkpoint: str, val_path: str | None, base_url: str) -> str | None:
    """Run the ``evaluate`` flow on the held-out rows, the offline teacher judging; return its verdict line.

    The offline teacher judges from what it measures in each picture, so the verdict is reproducible.
    """
    from flows.evaluate import evaluate
    from vqa_distill.student.judged.params import EvalParams
    from vqa_distill.student.judged.report import EvalOutcome

    if val_path is None:
        return None
    params = EvalParams(
        dataset=val_path, checkpoint=checkpoint, base_url=base_url, judge_model="gpt-4o-mini", rpm=6000,
        tpm=10_000_000, cuda_devices="cpu", max_new_tokens=DEMO_ANSWER_TOKENS,
    )  # fmt: skip
    run = run_flow(evaluate(params, return_state=True))
    if isinstance(run.result, BaseException):
        return f"judged: no verdict ({run.result})"
    outcome = run.result if isinstance(run.result, EvalOutcome) else EvalOutcome(**run.result)
    return f"{outcome.headline}\njudged side by side: {outcome.html_path}"


def print_scores(run_dir: Path) -> None:
    """Print the student's and the base model's ROUGE-L, the loss curve's ends, warnings and one example."""
    from vqa_distill.student.results import read_summary
    from vqa_distill.student.training import read_evaluation

    summary = read_summary(run_dir)
    evaluation = read_evaluation(run_dir)
    loss = ""
    if summary.loss_points:
        (_, first), (last_step, last) = summary.loss_points[0], summary.loss_points[-1]
        loss = f"; loss {first:.2f} → {last:.2f} over {last_step} steps"
    if evaluation is None:
        print(f"no evaluation{loss}")
        return
    student, base = evaluation.student_rouge_l, evaluation.base_rouge_l
    versus = "" if base is None else f" vs base {base:.2f} ({student - base:+.2f})"
    print(f"student ROUGE-L {student:.2f}{versus} on {len(evaluation.rows)} held-out image(s){loss}")
    for warning in evaluation.warnings():
        print(f"warning: {warning}")
    print_example(evaluation)


def print_example(evaluation: EvalReport) -> None:
    """The first held-out row: what the teacher, the student and the base model answered."""
    if not evaluation.rows:
        return
    row = evaluation.rows[0]
    print(f"example, {source_name(row.images[0]) if row.images else 'no image'}:")
    answers = [("teacher", row.reference), ("student", evaluation.student[0])]
    if evaluation.base is not None:
        answers.append(("base", evaluation.base[0]))
    for name, text in answers:
        shown = repr(text) if not text.strip() else " ".join(text.split())
        print(f"  {name + ':':<9}{shown[:EXAMPLE_CHARS]}{'…' if len(shown) > EXAMPLE_CHARS else ''}")


def source_name(picture: str) -> str:
    """The original file a row's picture was copied from (the row points at the teacher's copy), by its sha256."""
    import json

    folder = Path(picture).parent.parent  # <run>/images/<sha256>-<budget>.jpg
    meta = folder / "val.meta.jsonl"
    sha = Path(picture).name.split("-", 1)[0]
    if meta.is_file():
        for line in meta.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line) if line.strip() else {}
            if entry.get("sha256") == sha and entry.get("source"):
                return Path(entry["source"]).name
    return Path(picture).name


def _minutes(seconds: float) -> str:
    """``2m05s``."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"
