"""``stack restart NAME`` starts a crashed process again from what ``up`` recorded (its command, folder and
settings; secrets by file), and stopping a dead process stops what it left running in its session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.support.helpers import run_cli
from vqa_distill.errors import EXIT_OK
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.supervisor import ManagedProcess, left_behind, port_is_free, start_process, stop_process


def _state(home: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / "state.json").read_text())
    return data


def _pid_of(home: Path, name: str) -> int:
    [process] = [p for p in _state(home)["processes"] if p["name"] == name]  # type: ignore[union-attr]
    return int(process["pid"])  # type: ignore[index]


def _dead(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


def test_a_killed_server_of_a_stack_is_started_again(tmp_path: Path) -> None:
    home, port = tmp_path / "stack", free_port()
    up = run_cli("stack", "up", "--home", str(home), "--port", str(port), "--no-deploy", "--gpu-worker", "none", timeout=300)
    assert up.returncode == EXIT_OK, up.stdout + up.stderr
    try:
        server = _pid_of(home, "prefect-server")
        os.kill(server, signal.SIGKILL)  # a crash: nothing to read back from /proc
        assert _dead(server)
        restart = run_cli("stack", "restart", "--home", str(home), "prefect-server", timeout=300)
        assert restart.returncode == EXIT_OK, restart.stdout + restart.stderr
        assert "was not running" in restart.stdout and f"listening on {port}" in restart.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code == 200
        assert _pid_of(home, "prefect-server") != server
        status = run_cli("stack", "status", "--home", str(home), "--json")
        assert all(p["running"] for p in json.loads(status.stdout)["processes"].values()), status.stdout
    finally:
        down = run_cli("stack", "down", "--home", str(home), timeout=120)
        assert down.returncode == EXIT_OK, down.stdout + down.stderr


_PARENT = """
import socket, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(120)
''', sys.argv[1]])
time.sleep(120)
"""


def test_stopping_a_dead_process_stops_the_children_it_left_holding_its_port(tmp_path: Path) -> None:
    port = free_port()
    process = start_process("parent", [sys.executable, "-c", _PARENT, str(port)], os.environ, tmp_path)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 20
        while port_is_free(port):
            assert time.monotonic() < deadline, "the child never listened"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)  # the parent crashes; its child keeps the port
        assert _dead(process.pid) and not port_is_free(port)
        [orphan] = left_behind(process)
        assert stop_process(process) is False  # the process itself was gone...
        assert _dead(orphan.pid) and port_is_free(port)  # ...and what it left is stopped too
        assert bystander.poll() is None  # another session is not touched
        assert left_behind(ManagedProcess("reused", os.getpid(), 0.0, [], "")) == []  # a reused pid names no session
    finally:
        bystander.kill()
        bystander.wait()
        with socket.socket():
            pass
