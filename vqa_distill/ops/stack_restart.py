"""Restart one process of a running stack with the same command and environment (``stack restart NAME``).

What an operator does after a crash or a configuration change, and what the fault tests do to show a
run survives a restart of its Prefect server or of PostgreSQL. The environment is read back from the
running process (it holds the secrets, which the state file never does); the new process is ready
when every port the old one listened on accepts connections again.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import psutil

from vqa_distill.errors import ConfigError
from vqa_distill.ops.stack_state import DEFAULT_HOME, StackState
from vqa_distill.paths import LOOPBACK
from vqa_distill.supervisor import ManagedProcess, start_process, stop_process, wait_until

READY_TIMEOUT_S = 120.0


def listening_ports(process: psutil.Process) -> set[int]:
    """Return the TCP ports ``process`` and its children listen on."""
    ports: set[int] = set()
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in member.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return ports


def accepts(port: int) -> bool:
    """True when a TCP connection to the loopback port succeeds now."""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def restart(home: Path = DEFAULT_HOME, name: str = "prefect-server", *, say: Callable[[str], None] = print) -> ManagedProcess:
    """Stop the stack's process ``name`` and start it again as it was; return the new process once it listens.

    FatalRunError, quoting its log's tail, when the new process dies or does not listen within ``READY_TIMEOUT_S``.
    """
    home = home.resolve()
    state = StackState.load(home)
    if state is None:
        raise ConfigError(f"no stack under {home}")
    old = state.process(name)
    handle = old.handle() if old else None
    if old is None or handle is None:
        known = ", ".join(p.name for p in state.processes)
        raise ConfigError(f"no running process {name!r} in the stack under {home} (it has: {known})")
    env, cwd, ports = handle.environ(), handle.cwd(), listening_ports(handle)
    stop_process(old)
    say(f"stopped {name} (pid {old.pid})")
    new = start_process(name, old.argv, env, Path(old.log).parent, cwd=Path(cwd))
    state.processes[state.processes.index(old)] = new
    state.save()
    wait_until(lambda: all(accepts(port) for port in ports), new, READY_TIMEOUT_S, f"{name} (started again)")
    say(f"started {name} again (pid {new.pid}), listening on {', '.join(map(str, sorted(ports))) or 'no port'}")
    return new
