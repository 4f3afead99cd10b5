"""Start one process of a stack again as ``up`` started it (``stack restart NAME``), running or crashed.

What an operator does after a crash or a configuration change, and what the fault tests do to show a
run survives a restart of its Prefect server or of PostgreSQL. A crashed process has no environment
to read back, so the command, folder and settings come from what ``up`` recorded in state.json
(``Launch``): the settings it added to the environment of the command that ran ``up`` (now: of this
command), each secret read again from its file. What a dead process left running in its session is
stopped first (it would hold the port); the new process is ready when every port the first one
listened on accepts connections again.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import psutil

from vqa_distill.errors import ConfigError
from vqa_distill.ops.stack_state import DEFAULT_HOME, StackState
from vqa_distill.paths import LOOPBACK, REPO_ROOT
from vqa_distill.supervisor import ManagedProcess, start_process, stop_process, wait_until

READY_TIMEOUT_S = 120.0


def listening_ports(process: psutil.Process) -> set[int]:
    """Return the TCP ports ``process`` and its children listen on."""
    ports: set[int] = set()
    with contextlib.suppress(psutil.Error):
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                ports |= {c.laddr.port for c in member.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return ports


def note_ports(state: StackState) -> None:
    """Record the ports each running process of the stack listens on (once ``up`` has them all ready)."""
    for process in state.processes:
        handle, launch = process.handle(), state.launches.get(process.name)
        if handle is not None and launch is not None:
            launch.ports = sorted(listening_ports(handle))


def accepts(port: int) -> bool:
    """True when a TCP connection to the loopback port succeeds now."""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def restart(home: Path = DEFAULT_HOME, name: str = "prefect-server", *, say: Callable[[str], None] = print) -> ManagedProcess:
    """Stop the stack's process ``name`` if it runs, start it again as ``up`` did; return it once it listens.

    ConfigError (one line) for an unknown name or a stack whose state predates recorded launches;
    FatalRunError, quoting its log's tail, when the new process dies or does not listen within ``READY_TIMEOUT_S``.
    """
    home = home.resolve()
    state = StackState.load(home)
    if state is None:
        raise ConfigError(f"no stack under {home}")
    old = state.process(name)
    if old is None:
        known = ", ".join(p.name for p in state.processes)
        raise ConfigError(f"no process {name!r} in the stack under {home} (it has: {known})")
    launch = state.launches.get(name)
    if launch is None:
        raise ConfigError(
            f"the stack under {home} did not record how {name} was started: `vqa-distill stack down`, then `stack up`"
        )
    if stop_process(old):
        say(f"stopped {name} (pid {old.pid})")
    else:
        say(f"{name} (pid {old.pid}) was not running")
    new = start_process(name, old.argv, launch.environment(home), Path(old.log).parent, cwd=Path(old.cwd or REPO_ROOT))
    state.processes[state.processes.index(old)] = new
    state.save()
    wait_until(lambda: all(accepts(port) for port in launch.ports), new, READY_TIMEOUT_S, f"{name} (started again)")
    say(f"started {name} again (pid {new.pid}), listening on {', '.join(map(str, launch.ports)) or 'no port'}")
    return new
