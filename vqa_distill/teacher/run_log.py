"""The logger of the teacher stage's library code: the Prefect run's inside a run (the UI shows it), else ``logging``'s."""

from __future__ import annotations

import logging
from typing import Any

LOGGER_NAME = "vqa_distill.teacher"


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """Return the Prefect run logger inside a flow or task run (the UI shows its lines), else ``logging``'s."""
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return logging.getLogger(LOGGER_NAME)
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(LOGGER_NAME)
