"""Start, watch and stop the processes the project runs (servers, workers): one supervisor for all.

A started process is identified by its pid and its start time, so a reused pid is never mistaken
for it; it runs in its own session (Ctrl-C in the caller's shell does not reach it) with its output
in a log file, whose tail is quoted when it fails to start. Stopping sends SIGTERM to it and its
children, then SIGKILL after a grace period. A process that died (killed, crashed) may leave
children behind, still holding its port; they stay in its session, so stopping it stops them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from vqa_distill.errors import FatalRunError
from vqa_distill.paths import LOOPBACK, REPO_ROOT
from vqa_distill.waiting import poll_until

STOP_TIMEOUT_S = 15.0  # after SIGTERM, before SIGKILL
POLL_S = 0.3
HEALTH_TIMEOUT_S = 2.0


@dataclass
class ManagedProcess:
    """A process the stack started: its pid and start time identify it, its log says what it did."""

    name: str
    pid: int
    create_time: float
    argv: list[str]
    log: str
    cwd: str = ""  # where it was started (empty in states written before it was recorded)

    def handle(self) -> psutil.Process | None:
        """Return the live process if it is still the one started (a reused pid is not), else None."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 1.0 or process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.Error:
            return None


def port_is_free(port: int) -> bool:
    """True when nothing listens on the loopback port.

    The probe binds with ``SO_REUSEADDR``, as servers do: a port whose last connections wait out
    TIME_WAIT (a server stopped a moment ago) is free to listen on, and without the option the
    probe would call it taken for a minute.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def start_process(
    name: str, argv: list[str], env: Mapping[str, str], logs: Path, cwd: Path = REPO_ROOT,
    pass_fds: tuple[int, ...] = (),
) -> ManagedProcess:
    """Start a detached process (its own session, so Ctrl-C in this shell does not reach it), logging to a file.

    ``pass_fds`` hands it open descriptors, such as a socket already listening on its port.
    """
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=pass_fds,
        )  # fmt: skip
    return ManagedProcess(name, process.pid, psutil.Process(process.pid).create_time(), argv, str(log_path), str(cwd))


def wait_until(ready: Callable[[], bool], process: ManagedProcess, timeout_s: float, what: str) -> None:
    """Poll ``ready`` until true; raise FatalRunError with the log's tail if the process dies or time runs out."""

    def failed(how: str) -> FatalRunError:
        return FatalRunError(f"{what} {how}; its log ({process.log}):\n{log_tail(process.log)}")

    def started() -> bool:
        if ready():
            return True
        if process.handle() is None:
            raise failed("exited during start-up")
        return False

    poll_until(started, timeout_s=timeout_s, every_s=POLL_S, timed_out=lambda: failed(f"not ready after {timeout_s:.0f} s"))


def log_tail(path: str | Path, chars: int = 3000) -> str:
    """Return the last ``chars`` characters of a log file (empty when unreadable)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def is_healthy(url: str) -> bool:
    """Tell whether ``url`` answers 200 now (a health endpoint)."""
    try:
        return httpx.get(url, timeout=HEALTH_TIMEOUT_S).status_code == 200
    except httpx.TransportError:
        return False


def stop_process(process: ManagedProcess, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop one started process and its children (SIGTERM, then SIGKILL); False when it was already gone.

    When it is gone, what it left running in its session is stopped all the same (a crashed server's
    children would keep its port).
    """
    handle = process.handle()
    if handle is None:
        _terminate(left_behind(process), timeout_s)
        return False
    try:
        tree = [handle, *handle.children(recursive=True)]
    except psutil.Error:
        tree = [handle]
    _terminate(tree, timeout_s)
    return True


def left_behind(process: ManagedProcess) -> list[psutil.Process]:
    """Return the processes still running in the session of a started process that is gone.

    It was started in a session of its own (``start_new_session``), whose id is its pid. Linux keeps
    that number reserved while any member of the session lives, so members found under it are its
    own; a pid that now names a newer process means nothing of it is left.
    """
    try:
        if abs(psutil.Process(process.pid).create_time() - process.create_time) > 1.0:
            return []  # the pid was reused: its session had ended
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:
        return []
    members = []
    for candidate in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if candidate.pid != process.pid and os.getsid(candidate.pid) == process.pid:
                members.append(candidate)
    return members


def _terminate(tree: list[psutil.Process], timeout_s: float) -> None:
    """SIGTERM every process of ``tree``, then SIGKILL those still alive after ``timeout_s``."""
    for member in tree:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signal.SIGTERM)
    _, still_alive = psutil.wait_procs(tree, timeout=timeout_s)
    for member in still_alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(still_alive, timeout=5)
