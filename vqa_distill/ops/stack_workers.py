"""Start one Prefect worker of the stack: its command, its home, its checkout, its host.

A worker of the local stack runs this checkout with the stack's Prefect home. A worker of the team
stack is a host of its own, as on a second machine: a copy of the checkout (``VQA_DISTILL_ROOT``,
which prefect.yaml's pull step runs flows from), a Prefect home, and, when the stack made one, a
network namespace from which it reaches the server by the bridge address.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.ops import netns
from vqa_distill.ops.stack_state import StackState
from vqa_distill.ops.worker_checkout import copy_checkout
from vqa_distill.paths import REPO_ROOT
from vqa_distill.supervisor import ManagedProcess, log_tail, start_process, wait_until

WORKER_START_TIMEOUT_S = 90.0
WORKER_READY = "started!"  # what `prefect worker start` logs once it polls
WORKERS_DIR = "workers"


@dataclass(frozen=True)
class WorkerSpec:
    """One worker: its name in the stack, its pool, and how many flow runs it takes at once (None: no cap)."""

    name: str
    pool: str
    limit: int | None = None


def worker_argv(pool: str, name: str, limit: int | None = None) -> list[str]:
    """Return the command of a process worker on ``pool`` (this interpreter: the project's venv)."""
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name]
    return [*argv, "--limit", str(limit)] if limit else argv


def _log_says(process: ManagedProcess, text: str) -> Callable[[], bool]:
    return lambda: text in log_tail(process.log, 20_000)


def start_worker(
    state: StackState,
    spec: WorkerSpec,
    env: Mapping[str, str],
    *,
    own_checkout: bool,
    host: dict[str, str] | None,
    say: Callable[[str], None],
) -> ManagedProcess:
    """Start ``spec`` (in its own checkout and home when asked, in ``host``'s namespace when given); wait until it polls."""
    home = Path(state.home)
    worker_env = dict(env)
    cwd = REPO_ROOT
    if own_checkout:
        place = home / WORKERS_DIR / spec.name
        checkout = place / "checkout"
        copied = copy_checkout(REPO_ROOT, checkout)
        worker_env.update(
            {
                "PREFECT_HOME": str(place / "prefect-home"),
                "VQA_DISTILL_ROOT": str(checkout),
                "PYTHONPATH": str(checkout),  # its own code first, not the tree the venv was installed from
            }
        )
        cwd = checkout
        say(f"{spec.name}: checkout {checkout} ({copied} file(s) refreshed)")
    machine = host["namespace"] if host else socket.gethostname()
    argv = worker_argv(spec.pool, f"{spec.name}@{machine}", spec.limit)
    if host is not None:
        argv = netns.in_namespace(host["namespace"], argv)
    worker = state.record(start_process(spec.name, argv, worker_env, home / "logs", cwd=cwd), worker_env)
    wait_until(_log_says(worker, WORKER_READY), worker, WORKER_START_TIMEOUT_S, spec.name)
    where = f" in namespace {host['namespace']} ({host['address']})" if host else ""
    say(f"{spec.name} polling {spec.pool}{where} (log: {worker.log})")
    return worker
