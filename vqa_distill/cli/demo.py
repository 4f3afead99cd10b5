"""``vqa-distill demo``: the whole DAG on the embedded default, on a laptop, with no network.

The offline teacher server stands in for GPT-4o, the tiny Qwen2.5-VL (random weights, built in
seconds) stands in for the student, and Prefect runs locally (a temporary server unless
PREFECT_API_URL points at one). The point is to see every stage, artifact and file that a real run
makes, in about a minute, before spending money or GPU hours.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vqa_distill.cli.prefect_api import use_prefect_api
from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, FatalRunError
from vqa_distill.flow_state import run_flow
from vqa_distill.paths import REPO_DATA

DEMO_API_KEY = "sk-offline-demo"  # the offline teacher accepts any key; the user's real key stays unused


def register(subparsers: Any) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline: sample images -> offline teacher -> dataset -> tiny model on CPU",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", default=str(REPO_DATA / "images"), help="image folder (default: the samples)")
    parser.add_argument("--prompt-file", default=str(REPO_DATA / "prompts.txt"), help="prompts, one per line")
    parser.add_argument("--out", default=str(REPO_DATA / "runs" / "demo"), help="run folder")
    parser.add_argument("--model-dir", default=str(REPO_DATA / "models" / "tiny-qwen2.5-vl"),
                        help="tiny student model folder (built when missing)")
    parser.add_argument("--latency", type=float, default=0.2, help="offline teacher latency per answer (s)")
    parser.add_argument("--max-steps", type=int, default=8, help="training steps on the CPU")
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

    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        print(f"building the tiny student model in {model_dir} ...", flush=True)
        build_tiny_model(model_dir)
    with running_teacher_server(latency_s=args.latency) as server:
        print(f"offline teacher at {server.base_url}", flush=True)
        teacher = TeacherParams(
            images=args.images, out=args.out, prompt_file=args.prompt_file, base_url=server.base_url,
            model="gpt-4o-mini", val_ratio=0.25, retry_delay=0.2,
        )
        student = StudentOptions(
            model_id_or_path=str(model_dir), cuda_devices="cpu", max_steps=args.max_steps,
            gradient_accumulation_steps=1, num_proc=1, max_length=4096, logging_steps=1, eval_limit=3,
            max_pixels=128 * 128,
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
    dataset = outcome.teacher.dataset
    print(f"\nteacher: {outcome.teacher.answered_now} answered now, {outcome.teacher.already_answered} already "
          f"answered, {outcome.teacher.failed} failed")
    if dataset:
        print(f"dataset: {dataset.train_path} ({dataset.train_rows} rows), val {dataset.val_rows} rows")
    if outcome.training:
        print(f"adapter: {outcome.training.checkpoint}")
    return EXIT_SOME_FAILED if outcome.teacher.failed else EXIT_OK
