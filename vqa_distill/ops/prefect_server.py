"""A local Prefect server that keeps up with thousands of task runs: its settings, its command, its start.

The SQLite server drops task-run events past ~10k queued ("Subscription queue is full") with its
default batches; these batch sizes and flush intervals keep its recorders ahead (docs/architecture.md, "Measured facts"). Used by
the local stack, the tests and the benchmarks alike.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from vqa_distill.paths import LOOPBACK
from vqa_distill.supervisor import ManagedProcess, is_healthy, start_process, stop_process, wait_until

SERVER_START_TIMEOUT_S = 90.0  # the first start migrates a fresh SQLite database

SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


def server_argv(port: int, host: str = LOOPBACK) -> list[str]:
    """Return the command of a Prefect server on ``host:port`` (this interpreter: the project's venv)."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def start_server(port: int, env: Mapping[str, str], logs: Path) -> ManagedProcess:
    """Start a Prefect server on ``port`` with ``env`` (plus these settings); return once ``/health`` answers."""
    process = start_process("prefect-server", server_argv(port), {**env, **SERVER_SETTINGS}, logs)
    try:
        wait_until(lambda: is_healthy(f"http://{LOOPBACK}:{port}/api/health"), process, SERVER_START_TIMEOUT_S, "prefect server")
    except BaseException:
        stop_process(process)
        raise
    return process


@contextlib.contextmanager
def running_server(env: Mapping[str, str], logs: Path, port: int | None = None) -> Iterator[str]:
    """Run a Prefect server until the block ends (for tests and benchmarks); yields its API URL."""
    port = port or free_port()
    process = start_server(port, env, logs)
    try:
        yield f"http://{LOOPBACK}:{port}/api"
    finally:
        stop_process(process)
