"""Point a command at a Prefect API before Prefect is imported: a running server, or a local one it starts."""

from __future__ import annotations

import os
import sys

# If anything still starts Prefect's temporary server, give it the time a busy 2-core machine needs.
EPHEMERAL_STARTUP_TIMEOUT_S = "240"


def say(line: str) -> None:
    """Tell the user about the Prefect server on stderr (stdout carries results)."""
    print(line, file=sys.stderr, flush=True)


def use_prefect_api() -> None:
    """Set this process's Prefect settings (raises FatalRunError with one plain line when none can be had)."""
    from vqa_distill.ops.local_server import prefect_api_env

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S)
    os.environ.update(prefect_api_env(say))
