"""Fixtures of the operations tests: a real local stack started by ``vqa-distill stack up``, and ways to drive it.

The stack is the product's own: a ``prefect server`` on a free loopback port (apart from the session
server of conftest.py), pools and deployments applied by the project's deploy command, a cpu-pool
worker and a CPU stand-in worker on gpu-pool, all real processes. Flow runs are started the way a
user starts them (``prefect deployment run``, the UI's Retry request) and read back from the API.
Import what a module uses explicitly (``from tests.support.ops_fixtures import ops_stack, ...``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.helpers import REPO_ROOT, TEST_API_KEY, run_cli
from vqa_distill.ops.prefect_server import free_port

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
FLOW_RUN_TIMEOUT_S = 240.0


@dataclass
class OpsStack:
    """A running stack: where its API is and the environment that points a CLI at it."""

    home: Path
    api_url: str
    env: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the stack's REST API (as the UI does) and return the JSON answer."""
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``vqa-distill`` against the stack."""
        return run_cli(*args, env=self.env, timeout=timeout)

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the ``prefect`` CLI against the stack."""
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **self.env}, cwd=REPO_ROOT,
        )  # fmt: skip

    def run_deployment(self, name: str, parameters: dict[str, Any]) -> str:
        """Start a deployment with ``prefect deployment run`` (as a user would); returns the flow run id."""
        done = self.prefect("deployment", "run", name, "--params", json.dumps(parameters))
        match = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
        assert done.returncode == 0 and match, done.stdout + done.stderr
        return match.group(1)

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        """Read one flow run."""
        run: dict[str, Any] = self.api("GET", f"/flow_runs/{flow_run_id}")
        return run

    def wait_final(self, flow_run_id: str, *, run_count: int = 1, timeout: float = FLOW_RUN_TIMEOUT_S) -> dict[str, Any]:
        """Wait until the flow run reaches a final state on its ``run_count``-th run; return it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state_type"] in FINAL_STATES and run["run_count"] >= run_count:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run_id} still {run['state_name']} after {timeout:.0f} s")
            time.sleep(1)

    def child_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        """The subflow runs of a flow run (linked through its task runs)."""
        body = {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}}
        runs: list[dict[str, Any]] = self.api("POST", "/flow_runs/filter", body)
        return runs

    def failed_task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        """The failed task runs of a flow run."""
        body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "task_runs": {"state": {"type": {"any_": ["FAILED"]}}}}
        runs: list[dict[str, Any]] = self.api("POST", "/task_runs/filter", body)
        return runs


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (task runs are recorded a moment after they end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout:.0f} s (last: {value!r})")
        time.sleep(0.5)


# pytest registers a fixture once per module that imports it, so a session-scoped fixture imported by
# three modules would start three stacks. The first one started is shared; its owner stops it.
_shared: OpsStack | None = None


@pytest.fixture(scope="session")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    """``vqa-distill stack up`` with a CPU stand-in gpu-pool worker; ``stack down`` afterwards, checked."""
    global _shared
    if _shared is not None:
        yield _shared
        return
    home = tmp_path_factory.mktemp("stack")
    env = {
        "OPENAI_API_KEY": TEST_API_KEY,  # the workers' key for the session's offline teacher
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # workers poll every second: tests wait less
    }
    up = run_cli("stack", "up", "--home", str(home), "--port", str(free_port()), "--gpu-worker", "cpu", env=env,
                 timeout=300)  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((home / "state.json").read_text())
    pids = [p["pid"] for p in state["processes"]]
    client_env = {k: state["env"][k] for k in ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH")}
    _shared = OpsStack(home=home, api_url=state["api_url"], env={**env, **client_env})
    try:
        yield _shared
    finally:
        _shared = None
        started = [*map(psutil.Process, pids)]
        started += [child for process in list(started) for child in process.children(recursive=True)]  # uvicorn...
        down = run_cli("stack", "down", "--home", str(home), timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"stack down left {left}"
