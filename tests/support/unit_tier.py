"""The unit tier's rule, enforced: a unit test starts no child process (but a few tools) and opens no listening socket.

Servers (a Prefect server, the offline teacher, PostgreSQL, Redis) and the project's CLI are child
processes or listening sockets, so a unit test that starts one, itself or through a fixture, is
refused at the call and fails even when the code under test swallows the refusal. Tests that need
them belong in tests/integration. The guard is installed by tests/unit/conftest.py around each unit
test's setup, call and teardown (fixtures included, session-scoped ones too) and removed between them.
"""

from __future__ import annotations

import multiprocessing.util
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Programs a unit test may run: tools that answer and exit, never serve, never run the project's CLI.
ALLOWED_TOOLS = frozenset(
    {
        "lint-imports",  # test_layers.py checks the import contract with it
        "git",  # the worker checkout lists a repository's files with ``git ls-files``
        "bash",  # test_team_stack_units.py sources the stack's env file the way a user's shell does
        "uname",  # the standard library's platform.processor() asks ``uname -p`` (the openai client's headers)
    }
)

# Ways to start a process that do not go through subprocess.Popen.
_OS_SPAWNERS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")


class UnitTierViolation(AssertionError):
    """A unit test started a process or a listening socket: it is an integration test."""


def _program(args: Any, executable: Any, shell: bool) -> str:
    """The name of the program ``subprocess.Popen(args, executable=..., shell=...)`` would run."""
    if shell:
        return Path(str(executable or "/bin/sh")).name
    if executable is not None:
        return Path(os.fsdecode(executable)).name
    first = args if isinstance(args, str | bytes | os.PathLike) else next(iter(args), "")
    return Path(os.fsdecode(first)).name


def _shown(args: Any) -> str:
    if isinstance(args, str | bytes | os.PathLike):
        return os.fsdecode(args)
    return " ".join(os.fsdecode(a) for a in args)[:200]


class UnitTierGuard:
    """Refuses child processes (except ``ALLOWED_TOOLS``) and listening sockets while installed."""

    def __init__(self, allowed: frozenset[str] = ALLOWED_TOOLS) -> None:
        self.allowed = allowed
        self.violations: list[str] = []
        self._tool = threading.local()  # set while an allowed tool's Popen runs (it may use posix_spawn)

    def refuse(self, what: str) -> UnitTierViolation:
        """Record ``what`` and return the error to raise at the call."""
        message = f"a unit test must not {what}; move the test to tests/integration"
        self.violations.append(message)
        return UnitTierViolation(message)

    def take(self) -> list[str]:
        """Return the violations seen so far and forget them (a test that provokes one on purpose)."""
        taken, self.violations = self.violations, []
        return taken

    def check(self) -> None:
        """Raise if a violation was seen, even one the code under test caught."""
        if self.violations:
            raise UnitTierViolation("; ".join(self.take()))

    @contextmanager
    def installed(self) -> Iterator[UnitTierGuard]:
        """Install the guard for the duration of the block; everything is restored afterwards."""
        patches = pytest.MonkeyPatch()
        try:
            self._patch_popen(patches)
            for name in _OS_SPAWNERS:
                if hasattr(os, name):
                    patches.setattr(os, name, self._os_spawner(name, getattr(os, name)))
            patches.setattr(multiprocessing.util, "spawnv_passfds", self._refusing("start a process (multiprocessing)"))
            listen = socket.socket.listen

            def guarded_listen(sock: socket.socket, *args: Any) -> None:
                raise self.refuse(f"listen on a socket ({sock.family.name}, a server)")

            guarded_listen.__wrapped__ = listen  # type: ignore[attr-defined]
            patches.setattr(socket.socket, "listen", guarded_listen)
            yield self
        finally:
            patches.undo()

    def _patch_popen(self, patches: pytest.MonkeyPatch) -> None:
        original = subprocess.Popen.__init__
        guard = self

        def guarded_init(popen: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
            program = _program(args, kwargs.get("executable"), bool(kwargs.get("shell")))
            if program not in guard.allowed:
                raise guard.refuse(f"start a child process ({_shown(args)!r}); allowed: {sorted(guard.allowed)}")
            guard._tool.active = True
            try:
                original(popen, args, *rest, **kwargs)
            finally:
                guard._tool.active = False

        patches.setattr(subprocess.Popen, "__init__", guarded_init)

    def _os_spawner(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._tool, "active", False):  # inside an allowed tool's Popen
                return original(*args, **kwargs)
            raise self.refuse(f"start a process (os.{name})")

        return guarded

    def _refusing(self, what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise self.refuse(what)

        return refused



def guarded_phase(guard: UnitTierGuard) -> Generator[None, object, object]:
    """Wrap one phase of a test (setup, call or teardown): install the guard, run the phase, then fail the
    phase if the guard refused something the code under test swallowed. For ``yield from`` in a hook wrapper."""
    try:
        with guard.installed():
            result = yield
    except BaseException as error:  # the phase failed already: say so once, with any refusal it swallowed
        seen = guard.take()
        if seen and not isinstance(error, UnitTierViolation):
            error.add_note("; ".join(seen))
        raise
    guard.check()
    return result
