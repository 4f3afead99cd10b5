"""``vqa-distill distill``: the distil loop, rounds in which the student's mistakes choose the teacher's next questions.

The teacher flags are ``generate``'s (a config file's ``[teacher]`` table works too; questions mode
is on, 3 questions per image unless --questions says otherwise); the student flags are a few of
``train``'s (a config file's ``[student]`` table holds any of them); the loop's flags come from
DistillParams. ``--out`` is the loop's folder: its state, ledger and every round's files.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vqa_distill.cli.student import argument_kwargs
from vqa_distill.cli.teacher import add_generate_arguments, params_from_args
from vqa_distill.errors import EXIT_FATAL, EXIT_OK
from vqa_distill.loop.params import DistillParams

STUDENT_FLAGS = {  # flag -> StudentOptions field
    "student_model": "model_id_or_path", "tuner": "tuner", "max_steps": "max_steps", "learning_rate": "learning_rate",
    "student_devices": "cuda_devices", "lora_rank": "lora_rank",
}  # fmt: skip
LOOP_FIELDS = [name for name in DistillParams.model_fields if name not in ("teacher", "student")]


def register(subparsers: Any) -> None:
    """Register ``distill``."""
    parser = subparsers.add_parser(
        "distill",
        help="distil in rounds: the student's mistakes and doubts choose what the teacher is asked next",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_generate_arguments(parser)
    student = parser.add_argument_group("student (per round)")
    student.add_argument("--student-model", help="the student model (hub id or folder)")
    student.add_argument("--tuner", choices=["lora", "qlora", "dora", "full"], help="(default: lora)")
    student.add_argument("--max-steps", type=int, help="training steps per round")
    student.add_argument("--learning-rate", type=float, help="(default: train's)")
    student.add_argument("--student-devices", help="GPUs for the student (e.g. 0), or cpu")
    student.add_argument("--lora-rank", type=int, help="(default: train's)")
    loop = parser.add_argument_group("loop")
    for name in LOOP_FIELDS:
        field = DistillParams.model_fields[name]
        flag = f"--{name.replace('_', '-')}"
        if flag in parser._option_string_actions:  # generate's own --seed, --judge-model: the loop's get a prefix
            flag = f"--loop-{name.replace('_', '-')}"
        flags = [flag]
        loop.add_argument(*flags, dest=f"loop_{name}", default=argparse.SUPPRESS, **argument_kwargs(name, field))
    parser.set_defaults(func=run_distill)


def params_of(args: argparse.Namespace) -> DistillParams:
    """Teacher flags (and config), student flags (and the config's [student] table), loop flags (raises ConfigError)."""
    from pydantic import ValidationError

    from vqa_distill.errors import ConfigError
    from vqa_distill.student.handoff import StudentOptions
    from vqa_distill.teacher.params import config_table

    values = vars(args)
    teacher_args = argparse.Namespace(**{k: v for k, v in values.items() if k not in STUDENT_FLAGS and not k.startswith("loop_")})
    teacher = params_from_args(teacher_args)
    student: dict[str, Any] = {}
    if args.config:
        student.update(config_table(args.config, "student"))
    student.update({field: values[flag] for flag, field in STUDENT_FLAGS.items() if values.get(flag) is not None})
    if "model_id_or_path" not in student:
        raise ConfigError("missing --student-model (or model_id_or_path in the config's [student] table)")
    loop = {name: values[f"loop_{name}"] for name in LOOP_FIELDS if f"loop_{name}" in values}
    try:
        return DistillParams(teacher=teacher, student=StudentOptions(**student), **loop)
    except ValidationError as exc:
        raise ConfigError("invalid options:\n  " + "\n  ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


def run_distill(args: argparse.Namespace) -> int:
    """Run the ``distill-loop`` flow in this process; print the table of rounds."""
    from vqa_distill.cli.prefect_api import use_prefect_api
    from vqa_distill.errors import VqaDistillError
    from vqa_distill.flow_state import run_flow

    try:
        params = params_of(args)
        use_prefect_api()
    except VqaDistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    from flows.distill import distill_loop
    from vqa_distill.loop.report import round_rows
    from vqa_distill.loop.state import RoundRecord

    run = run_flow(distill_loop(params, return_state=True))
    if isinstance(run.result, BaseException):
        print(f"error: {run.result}", file=sys.stderr)
        return EXIT_FATAL
    rounds = [r if isinstance(r, RoundRecord) else RoundRecord.model_validate(r) for r in run.result]
    for row in round_rows(rounds):
        print("  ".join(f"{k}: {v}" for k, v in row.items()))
    return EXIT_OK
