"""The team stack as a fixture: ``vqa-distill stack up --postgres --redis --cpu-workers 3``, for real.

PostgreSQL and Redis come from Debian's packages (``.ci/run`` installs them), the Prefect server runs
on them with credentials, and three cpu-pool workers run each in its own network namespace where the
machine allows. ``stack down`` afterwards is checked: no process and no namespace is left.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.helpers import TEST_API_KEY, run_cli
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.stack_secrets import SECRETS_DIR

TEAM_WORKERS = 3


def team_servers_installed() -> bool:
    """True when PostgreSQL and Redis binaries are on this machine (Debian's packages)."""
    return shutil.which("redis-server") is not None and any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))


@dataclass
class TeamStack:
    """A running team stack: its home, API, the teacher as workers reach it, and a client environment."""

    home: Path
    api_url: str
    teacher_admin: str  # the offline teacher's admin base on this host
    teacher_for_workers: str  # the /v1 address workers are given (the bridge address under namespaces)
    env: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)

    def secret(self, name: str) -> str:
        """Read one of the stack's generated secrets (as an operator with the owner's rights would)."""
        return (self.home / SECRETS_DIR / name).read_text(encoding="utf-8").strip()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the Prefect API with the stack's credentials."""
        user, password = self.env["PREFECT_API_AUTH_STRING"].split(":", 1)
        response = httpx.request(method, f"{self.api_url}{path}", json=body, auth=(user, password), timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def teacher(self, method: str, path: str, body: Any = None) -> Any:
        """Call the offline teacher's admin API."""
        response = httpx.request(method, f"{self.teacher_admin}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def workers(self) -> list[dict[str, Any]]:
        """The cpu-pool worker processes the stack started."""
        return [p for p in self.state["processes"] if p["name"].startswith("cpu-worker")]


def _namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()} if done.returncode == 0 else set()


@pytest.fixture(scope="module")
def team_stack() -> Iterator[TeamStack]:
    """Start the team stack; stop it afterwards and check nothing it started is left."""
    if not team_servers_installed():
        pytest.skip("PostgreSQL and Redis are not installed (.ci/run installs them from Debian's packages)")
    # Not under pytest's 0700 temp folder: PostgreSQL runs as its own user and must reach its data.
    home = Path(tempfile.mkdtemp(prefix="vqa-distill-team-"))
    home.chmod(0o755)
    port, teacher_port = free_port(), free_port()
    env = {"OPENAI_API_KEY": TEST_API_KEY, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    namespaces_before = _namespaces()
    up = run_cli(
        "stack", "up", "--home", str(home), "--port", str(port), "--postgres", "--redis",
        "--cpu-workers", str(TEAM_WORKERS), "--runs-per-worker", "1", "--offline-teacher", "--teacher-port", str(teacher_port),
        "--gpu-worker", "none", "--postgres-port", str(free_port()), "--redis-port", str(free_port()),
        env=env, timeout=600,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((home / "state.json").read_text())
    pids = [p["pid"] for p in state["processes"]]
    auth = (home / SECRETS_DIR / "prefect-auth").read_text().strip()
    client_env = {**env, "PREFECT_API_URL": state["api_url"], "PREFECT_API_AUTH_STRING": auth,
                  "PREFECT_RESULTS_LOCAL_STORAGE_PATH": state["env"]["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]}  # fmt: skip
    stack = TeamStack(
        home=home, api_url=state["api_url"], teacher_admin=f"http://127.0.0.1:{teacher_port}",
        teacher_for_workers=state["services"]["teacher"], env=client_env, state=state,
    )  # fmt: skip
    try:
        yield stack
    finally:
        started = []
        for pid in pids:
            try:
                process = psutil.Process(pid)
                started += [process, *process.children(recursive=True)]
            except psutil.Error:
                pass
        down = run_cli("stack", "down", "--home", str(home), timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"stack down left {left}"
        assert _namespaces() <= namespaces_before, "stack down left network namespaces"
        shutil.rmtree(home, ignore_errors=True)
