"""``vqa-distill train`` (fine-tune the student through the ``train`` flow) and ``vqa-distill tiny-model``.

The train flags are generated from TrainParams, so the CLI, the Prefect form and ms-swift's argv share
one list of names, defaults and help texts. Each flag works with underscores (the original script's
spelling) and with dashes. Only flags given on the command line are passed on; TrainParams supplies
every default. Imports stay at argparse and pydantic level so that ``vqa-distill --help`` is fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from vqa_distill.errors import EXIT_FATAL, EXIT_OK
from vqa_distill.student.params import TrainParams

TRAIN_EPILOG = """\
tuners: lora (default) | qlora (4-bit base; CUDA + bitsandbytes) | dora | full.
--model_name/--model_author only matter with --self-cognition N, which mixes N rows of ms-swift's
swift/self-cognition dataset (downloaded from the hub) into training.
--max_pixels, when not given, is chosen from --max_length so that one image takes at most about half
of it (2048 -> 802816 pixels for Qwen2/2.5-VL, 1048576 for Qwen3-VL); the preflight log says the value.
--max-drop-share (default 0.05) refuses a run when more than that share of the rows is too long or
malformed (ms-swift would drop them); below it, --skip-bad-rows drops them and says how many.
With --merge, --merge-check-rows N (default 3) compares the merged model's answers with the adapter's.
The checkpoint path is printed last. Exit codes: 0 trained; 3 refused or failed (bad rows, missing
model, bad options, ms-swift error)."""

TINY_EPILOG = "Random weights: for offline demos and tests, not for answers worth reading."

# What "(default: ...)" says for fields whose None means "worked out at run time", not "off".
DERIVED_DEFAULTS = {"max_pixels": "chosen from --max_length"}


def register(subparsers: Any) -> None:
    """Register ``train`` and ``tiny-model``."""
    train = subparsers.add_parser(
        "train",
        help="fine-tune the Qwen-VL student on the teacher's dataset (ms-swift, via the Prefect 'train' flow)",
        description=__doc__,
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(train)
    train.set_defaults(func=run_train)

    tiny = subparsers.add_parser(
        "tiny-model",
        help="build a tiny random-weight Qwen-VL model (about 15 MB, seconds) for offline runs",
        epilog=TINY_EPILOG,
    )
    tiny.add_argument("--out", required=True, help="directory to write the model into")
    tiny.add_argument(
        "--arch",
        choices=["qwen2_5_vl", "qwen2_vl", "qwen3_vl"],
        default="qwen2_5_vl",
        help="(default: qwen2_5_vl)",
    )
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    tiny.set_defaults(func=run_tiny_model)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainParams field, ``--name`` and ``--name-with-dashes``, default SUPPRESS."""
    for name, field in TrainParams.model_fields.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        parser.add_argument(*flags, dest=name, default=argparse.SUPPRESS, **argument_kwargs(name, field))


def argument_kwargs(name: str, field: FieldInfo) -> dict[str, Any]:
    """argparse options for one field, derived from its annotation."""
    annotation = _without_none(field.annotation)
    help_text = field.description or ""
    required = field.is_required()
    if not required:
        default = field.get_default(call_default_factory=True)
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        shown = DERIVED_DEFAULTS.get(name, shown)
        help_text += f" (default: {shown if shown not in ('', None) else 'none'})"
    if name == "swift_args":
        return {"type": shlex.split, "metavar": "'FLAGS'", "help": help_text}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "help": help_text}
    if get_origin(annotation) is list:
        return {"nargs": "+", "required": required, "help": help_text}
    if get_origin(annotation) is Literal:
        return {"choices": list(get_args(annotation)), "help": help_text}
    return {"type": annotation, "required": required, "help": help_text}


def _without_none(annotation: Any) -> Any:
    """``int | None`` -> ``int``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def params_from_args(args: argparse.Namespace) -> TrainParams:
    """The TrainParams of the flags given (raises pydantic's ValidationError)."""
    return TrainParams(**{k: v for k, v in vars(args).items() if k in TrainParams.model_fields})


def run_train(args: argparse.Namespace) -> int:
    """Run the ``train`` flow in this process; prints the checkpoint path last."""
    try:
        params = params_from_args(args)
    except ValidationError as exc:
        print(f"error: invalid training options:\n{exc}", file=sys.stderr)
        return EXIT_FATAL
    from vqa_distill.cli.prefect_api import use_prefect_api
    from vqa_distill.errors import VqaDistillError

    try:
        use_prefect_api()
        from flows.train import train

        checkpoint = train(params)
    except VqaDistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    print(checkpoint)
    return EXIT_OK


def run_tiny_model(args: argparse.Namespace) -> int:
    """Build the tiny model and print where it is and how big."""
    from vqa_distill.student.tiny_model import build_tiny_model, describe

    info = describe(build_tiny_model(args.out, arch=args.arch, seed=args.seed))
    print(f"{info['path']} ({info['architectures'][0]}, {info['bytes'] / 1e6:.1f} MB)")
    return EXIT_OK
