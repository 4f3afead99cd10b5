"""The ``vqa-distill`` command line: one sub-command per job, each registered by the module that owns it.

Registration modules import only argparse-level code so that ``--help`` and the teacher stage do not
pay for importing torch and ms-swift.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vqa_distill.cli.ledger_option import LEDGER_COMMANDS, add_ledger_url, use_ledger_url

# Each module exposes ``register(subparsers) -> None`` and sets ``func(args) -> int`` on its parsers.
COMMAND_MODULES = (
    "vqa_distill.cli.teacher",
    "vqa_distill.cli.batch",
    "vqa_distill.cli.offline_teacher",
    "vqa_distill.cli.student",
    "vqa_distill.cli.ops",
    "vqa_distill.cli.evaluate",
    "vqa_distill.cli.distill",
    "vqa_distill.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser from every registered command module."""
    parser = argparse.ArgumentParser(
        prog="vqa-distill",
        description="Distil an OpenAI-compatible vision teacher into a fine-tuned Qwen-VL student.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for command in LEDGER_COMMANDS:
        add_ledger_url(subparsers.choices[command])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    use_ledger_url(args)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
