"""The ``teacher-server`` sub-command: the offline teacher's own flags, under the project's command."""

from __future__ import annotations

from typing import Any

from vqa_distill.offline_teacher.main import add_arguments, run


def register(subparsers: Any) -> None:
    """Register ``teacher-server`` on the top-level CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "teacher-server",
        help="run the offline OpenAI-compatible teacher server",
        description="Serve a deterministic, offline OpenAI-compatible vision endpoint with fault injection.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
