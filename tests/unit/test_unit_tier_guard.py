"""The unit tier's guard (tests/unit/conftest.py) refuses what a unit test must not do, and lets the tools through.

Each refusal below is provoked on purpose through the guard that is installed around this very test,
then taken back with ``unit_tier_guard.take()`` so that the test itself passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import run_cli
from tests.support.unit_tier import UnitTierGuard, UnitTierViolation, guarded_phase


def test_a_python_child_process_and_the_cli_are_refused_before_they_start(
    tmp_path: Path, unit_tier_guard: UnitTierGuard
) -> None:
    marker = tmp_path / "started"
    with pytest.raises(UnitTierViolation, match="must not start a child process"):
        subprocess.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], check=False)
    with pytest.raises(UnitTierViolation, match=r"vqa_distill\.cli generate --help"):
        run_cli("generate", "--help")
    with pytest.raises(UnitTierViolation, match="child process"):
        subprocess.Popen("vqa-distill stack up", shell=True)
    assert not marker.exists()
    assert len(unit_tier_guard.take()) == 3


def test_an_asyncio_child_process_is_refused(unit_tier_guard: UnitTierGuard) -> None:
    async def start() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-m", "vqa_distill.offline_teacher")

    with pytest.raises(UnitTierViolation, match="offline_teacher"):
        asyncio.run(start())
    assert len(unit_tier_guard.take()) == 1


def test_processes_started_without_subprocess_are_refused(unit_tier_guard: UnitTierGuard) -> None:
    with pytest.raises(UnitTierViolation, match=r"os\.system"):
        os.system("true")
    with pytest.raises(UnitTierViolation, match=r"os\.posix_spawn"):
        os.posix_spawn("/bin/true", ["true"], dict(os.environ))
    with pytest.raises(UnitTierViolation, match="multiprocessing"):
        multiprocessing.get_context("spawn").Process(target=print).start()
    assert len(unit_tier_guard.take()) == 3


def test_a_listening_socket_is_refused(unit_tier_guard: UnitTierGuard) -> None:
    with pytest.raises(UnitTierViolation, match="listen on a socket"):
        socket.create_server(("127.0.0.1", 0))

    async def serve() -> None:
        await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)

    with pytest.raises(UnitTierViolation, match="listen on a socket"):
        asyncio.run(serve())
    assert len(unit_tier_guard.take()) == 2


@pytest.fixture
def refused_in_a_fixture(unit_tier_guard: UnitTierGuard) -> list[str]:
    """A fixture that tries to start a server: the guard is installed during setup too."""
    with pytest.raises(UnitTierViolation):
        subprocess.Popen([sys.executable, "-m", "http.server", "0"])
    return unit_tier_guard.take()


def test_a_fixture_starting_a_server_is_refused(refused_in_a_fixture: list[str]) -> None:
    [refusal] = refused_in_a_fixture
    assert "http.server" in refusal and "tests/integration" in refusal


def test_a_refusal_the_code_swallowed_still_fails_the_phase(unit_tier_guard: UnitTierGuard) -> None:
    guard = UnitTierGuard()
    phase = guarded_phase(guard)
    next(phase)  # the phase begins: the guard is installed (over the one around this test)
    with contextlib.suppress(Exception):  # code under test that hides every error
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(UnitTierViolation, match="must not start a child process"):
        phase.send(None)  # the phase ends
    assert guard.violations == [] and unit_tier_guard.violations == []  # reported once, by the phase's guard
    with pytest.raises(UnitTierViolation):  # the guard around this test is back in place
        socket.create_server(("127.0.0.1", 0))
    assert len(unit_tier_guard.take()) == 1


def test_the_allowed_tools_run() -> None:
    done = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("git version")
    assert subprocess.run(["bash", "-c", "exit 0"], check=False).returncode == 0


def test_the_unit_tier_has_no_prefect_server(prefect_server: object) -> None:
    assert prefect_server is None  # tests/conftest.py's session server is replaced for unit tests
