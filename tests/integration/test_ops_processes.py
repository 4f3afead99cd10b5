"""The operations layer's parts that need a live process or port: pools on the session's real Prefect
server, stopping real processes, a port held by a listening socket, and the ops commands' errors through
the CLI. Their pure neighbours are in tests/unit/test_ops_units.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vqa_distill.errors import ConfigError
from vqa_distill.ops.pools import CPU_POOL, GPU_POOL, PoolSpec, apply_all, apply_pool, base_job_template
from vqa_distill.ops.stack_state import StackState
from vqa_distill.supervisor import ManagedProcess, port_is_free, stop_process


def test_pools_and_limit_are_applied_idempotently_on_a_real_server() -> None:
    from prefect.client.orchestration import get_client

    async def scenario() -> tuple[list[str], list[str], str, str, int]:
        async with get_client() as client:
            first = await apply_all(client, gpu_pool_type="docker", gpu_slots=2)
            second = await apply_all(client, gpu_slots=2)  # no type given: the docker pool stays docker
            gpu = await client.read_work_pool(GPU_POOL)
            limit = await client.read_concurrency_limit_by_tag("gpu")
            with pytest.raises(ConfigError, match="delete it first"):
                await apply_pool(client, PoolSpec(GPU_POOL, "process", "x", base_job_template("process")))
            for pool in (CPU_POOL, GPU_POOL):  # leave the session server as it was
                await client.delete_work_pool(pool)
            await client.delete_concurrency_limit_by_tag("gpu")
            return first, second, gpu.type, json.dumps(gpu.base_job_template), limit.concurrency_limit

    first, second, gpu_type, template, slots = asyncio.run(scenario())
    assert [line.split(": ")[1] for line in first[:2]] == ["created", "created"]
    assert [line.split(": ")[1] for line in second[:2]] == ["updated", "updated"]
    assert gpu_type == "docker" and "device_requests" in template and slots == 2


def test_stop_process_stops_the_started_process_and_its_children_only(tmp_path: Path) -> None:
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
            time.sleep(0.1)
        [child] = psutil.Process(parent.pid).children()
        started = ManagedProcess("p", parent.pid, psutil.Process(parent.pid).create_time(), [], "")
        impostor = ManagedProcess("p", parent.pid, started.create_time - 100, [], "")  # a reused pid
        assert impostor.handle() is None and stop_process(impostor) is False
        assert stop_process(started) is True
        parent.wait(5)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert bystander.poll() is None  # untouched
        assert stop_process(started) is False  # already gone
    finally:
        bystander.kill()
        bystander.wait()


def test_stack_state_round_trips_and_ports_are_checked(tmp_path: Path) -> None:
    state = StackState(home=str(tmp_path), port=4200, api_url="u/api", ui_url="u", env={"K": "V"},
                       processes=[ManagedProcess("server", 1, 2.0, ["a"], "log")])  # fmt: skip
    state.save()
    assert StackState.load(tmp_path) == state
    assert StackState.load(tmp_path / "none") is None
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_is_free(sock.getsockname()[1]) is False


def test_ops_commands_fail_clearly(tmp_path: Path) -> None:
    from tests.support.helpers import run_cli
    from vqa_distill.errors import EXIT_FATAL, EXIT_OK

    bad_id = run_cli("failed", "not-a-run")
    assert bad_id.returncode == EXIT_FATAL and "neither a flow run id nor 'latest'" in bad_id.stderr
    unknown = run_cli("retry-failed", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == EXIT_FATAL and "no flow run 00000000-0000-4000-8000-000000000000" in unknown.stderr
    for command in ("failed", "retry-failed"):
        unreachable = run_cli(command, "latest", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
        assert unreachable.returncode == EXIT_FATAL and "cannot reach the Prefect API" in unreachable.stderr
    no_stack = run_cli("stack", "status", "--home", str(tmp_path))
    assert no_stack.returncode == EXIT_FATAL and "no stack under" in no_stack.stderr
    assert run_cli("stack", "down", "--home", str(tmp_path)).returncode == EXIT_OK
