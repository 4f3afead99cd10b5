"""Sharded teacher runs on the local stack: linked teacher-shard runs, failures across shards, a crashed shard.

A ``generate`` run with ``shards: 3`` starts three runs of the ``teacher-shard`` deployment, which the
stack's cpu-pool worker takes like any other flow run; the parent waits and builds the dataset once.
The offline teacher counts every picture it is asked about, so "asked exactly once" is checked where
it is paid for. Two pictures are refused (HTTP 400 for their 40x40 size): ``failed`` lists them from
the shard runs, and the UI's Retry and ``retry-failed`` re-ask those two and nothing else. A shard's
flow-run process is then killed with SIGKILL mid-run: the worker reports it Crashed, the parent starts
that shard again, and no answer already in the ledger is paid for twice. Last, the Prefect server is
restarted in the middle of a sharded run, which still completes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.helpers import TEST_API_KEY, chat_requests, make_images, run_cli, teacher_params
from tests.support.ops_fixtures import OpsStack, wait_for
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.errors import EXIT_OK, EXIT_SOME_FAILED
from vqa_distill.ops.prefect_server import SERVER_START_TIMEOUT_S, free_port
from vqa_distill.ops.stack import StackState
from vqa_distill.supervisor import is_healthy, start_process, stop_process, wait_until
from vqa_distill.teacher.ledger.records import DONE_STATUSES, Ledger

REFUSE_ODD_SIZE = [{"kind": "400", "match_image_size": "40x40"}]
UI_RETRY = {"state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"}, "force": True}
SHARD_FLOW_NAME = "teacher-shard"


def asked(teacher: Any) -> Counter[str]:
    """How often each picture (by fingerprint) was asked since the teacher's last reset."""
    return Counter(r["fingerprints"][0] for r in chat_requests(teacher.stats()))


def asked_sizes(teacher: Any) -> list[str]:
    """The sizes of the pictures asked since the last reset; asserts each was asked once."""
    requests = chat_requests(teacher.stats())
    assert len({r["fingerprints"][0] for r in requests}) == len(requests), "a picture was asked twice"
    return sorted(r["image_sizes"][0] for r in requests)


def shard_runs(stack: OpsStack, parent_id: str) -> list[dict[str, Any]]:
    """The teacher-shard runs linked under a parent, oldest first."""
    flow_ids = {f["id"] for f in stack.api("POST", "/flows/filter", {"flows": {"name": {"any_": [SHARD_FLOW_NAME]}}})}
    runs = [run for run in stack.child_runs(parent_id) if run["flow_id"] in flow_ids]
    return sorted(runs, key=lambda run: run["created"])


def sharded_params(images: Path, out: Path, base_url: str, shards: int, **more: Any) -> dict[str, Any]:
    """Teacher parameters of a sharded deployment run against the offline teacher."""
    return {**teacher_params(images, out, base_url), "shards": shards, **more}


def test_a_sharded_run_asks_each_image_once_and_its_failures_are_retried_across_shards(
    ops_stack: OpsStack, teacher: Any, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    make_images(images, 28)
    make_images(images, 2, prefix="odd", size=(40, 40))
    teacher.set_faults(REFUSE_ODD_SIZE)
    out = tmp_path / "run"
    run_id = ops_stack.run_deployment("generate/generate", {"params": sharded_params(images, out, teacher.base_url, 3)})
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "FAILED" and "2 of 30 requests failed" in run["state"]["message"], run["state"]
    assert sorted(asked_sizes(teacher)) == ["40x40"] * 2 + ["64x48"] * 28  # every picture once, over all shards

    # Three linked teacher-shard runs of the deployment, named after the parent; the parent built the dataset.
    shards = shard_runs(ops_stack, run_id)
    assert len(shards) == 3 and all(s["deployment_id"] and s["parent_task_run_id"] for s in shards), shards
    assert sorted(s["parameters"]["shard_index"] for s in shards) == [0, 1, 2]
    assert all(s["name"].startswith(f"{run['name']}-shard-") for s in shards)
    assert {s["state_type"] for s in shards} <= {"COMPLETED", "FAILED"}
    assert len(read_jsonl(out / "train.jsonl")) == 28
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flow_run_id"] == run_id and summary["answered_now"] == 28 and summary["failed"] == 2

    # `failed <parent>` lists the two refused pictures from the shard runs' task runs.
    def listing() -> dict[str, Any] | None:
        done = ops_stack.cli("failed", run_id, "--json")
        assert done.returncode in (EXIT_OK, EXIT_SOME_FAILED), done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data if len(data["images"]) == 2 else None

    failed = wait_for(listing, what="two failed images listed")
    assert [i["file"] for i in failed["images"]] == ["odd_000.png", "odd_001.png"]
    assert all("HTTP 400" in i["reason"] for i in failed["images"])
    assert sorted(failed["shard_run_ids"]) == sorted(s["id"] for s in shards)

    # The UI's Retry of the parent: new shard runs for the shards that own the two, nothing else asked.
    teacher.reset()
    ops_stack.api("POST", f"/flow_runs/{run_id}/set_state", UI_RETRY)
    retried = ops_stack.wait_final(run_id, run_count=2)
    assert retried["state_type"] == "FAILED" and "2 of 2 requests failed" in retried["state"]["message"]
    assert asked_sizes(teacher) == ["40x40", "40x40"]
    assert len(shard_runs(ops_stack, run_id)) > 3

    # `vqa-distill retry-failed <parent>`, the fault gone: only the two are asked, sharded again; all answered.
    teacher.reset()
    teacher.set_faults([])
    cli = ops_stack.cli("retry-failed", run_id)
    assert cli.returncode == EXIT_OK, cli.stdout + cli.stderr
    assert asked_sizes(teacher) == ["40x40", "40x40"]
    assert len(read_jsonl(out / "train.jsonl")) == 30


def flow_run_processes(flow_run_id: str) -> list[psutil.Process]:
    """The processes a worker started for one flow run (they carry its id in their environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def answered_keys(out: Path) -> set[str]:
    """The request keys the ledger holds as answered (paid for)."""
    with Ledger(out) as ledger:
        return ledger.keys_with_status(*DONE_STATUSES)


def test_a_killed_shard_is_run_again_and_pays_only_for_what_the_ledger_lacks(
    ops_stack: OpsStack, teacher: Any, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    make_images(images, 16)
    out = tmp_path / "run"
    teacher.set_latency(0.5)  # a shard takes seconds: time to kill it mid-run
    params = sharded_params(images, out, teacher.base_url, 2, concurrency=1)
    run_id = ops_stack.run_deployment("generate/generate", {"params": params})

    def a_shard_half_done() -> dict[str, Any] | None:
        running = [s for s in shard_runs(ops_stack, run_id) if s["state_type"] == "RUNNING"]
        if not running or not (out / "ledger.sqlite").is_file():
            return None
        with Ledger(out) as ledger:
            paid = [r for r in ledger.records(*DONE_STATUSES) if r.flow_run_id == running[0]["id"]]
        return running[0] if len(paid) >= 2 else None

    victim = wait_for(a_shard_half_done, timeout=180, what="a shard run with two answers recorded")
    processes = flow_run_processes(victim["id"])
    assert processes, f"no process runs flow run {victim['id']}"
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)  # the machine dies: no cleanup, no final state
    with Ledger(out) as ledger:
        paid_by_victim = [r.key for r in ledger.records(*DONE_STATUSES) if r.flow_run_id == victim["id"]]

    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    shards = shard_runs(ops_stack, run_id)
    by_index: dict[int, list[dict[str, Any]]] = {}
    for shard in shards:
        by_index.setdefault(shard["parameters"]["shard_index"], []).append(shard)
    again = by_index[victim["parameters"]["shard_index"]]
    assert [s["state_type"] for s in again] == ["CRASHED", "COMPLETED"], again
    assert again[1]["name"].endswith("-try-2")
    # Every picture answered once, but for the one in flight at the kill (asked, never recorded): the
    # victim's answers already in the ledger (two or more) were not asked again.
    counts = asked(teacher)
    assert len(counts) == 16 and len(read_jsonl(out / "train.jsonl")) == 16
    assert len(paid_by_victim) >= 2 and set(paid_by_victim) <= answered_keys(out)
    assert sum(n - 1 for n in counts.values()) <= params["concurrency"], counts
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answered_now"] == 16 and summary["failed"] == 0


@pytest.fixture
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    """A stack of this test's own (its server is restarted: the shared one must stay as it was started)."""
    home = tmp_path_factory.mktemp("own-stack")
    env = {"OPENAI_API_KEY": TEST_API_KEY, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    up = run_cli("stack", "up", "--home", str(home), "--port", str(free_port()), "--gpu-worker", "none", env=env,
                 timeout=300)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((home / "state.json").read_text())
        client_env = {k: state["env"][k] for k in ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH")}
        yield OpsStack(home=home, api_url=state["api_url"], env={**env, **client_env})
    finally:
        down = run_cli("stack", "down", "--home", str(home), timeout=120)  # stops the restarted server too
        assert down.returncode == 0, down.stdout + down.stderr


def restart_server(stack: OpsStack, while_down: Callable[[], None]) -> None:
    """Stop the stack's Prefect server and start it again on the same port and database (an upgrade, a crash).

    The new process replaces the old one in the stack's state file, so ``stack down`` stops it.
    """
    state = StackState.load(stack.home)
    assert state is not None
    (server,) = [p for p in state.processes if p.name == "prefect-server"]
    assert stop_process(server)
    while_down()
    time.sleep(2)  # a real outage: every client sees refused connections for a while
    again = start_process("prefect-server", server.argv, {**os.environ, **state.env}, stack.home / "logs")
    state.processes = [again if p is server else p for p in state.processes]
    state.save()
    wait_until(lambda: is_healthy(f"{state.api_url}/health"), again, SERVER_START_TIMEOUT_S, "prefect server")


def test_a_sharded_run_completes_across_a_prefect_server_restart(
    own_stack: OpsStack, teacher: Any, tmp_path: Path
) -> None:
    ops_stack = own_stack
    images = tmp_path / "images"
    make_images(images, 20)
    out = tmp_path / "run"
    teacher.set_latency(1.0)  # ten pictures a shard, one at a time: the outage falls in the middle
    run_id = ops_stack.run_deployment(
        "generate/generate", {"params": sharded_params(images, out, teacher.base_url, 2, concurrency=1)}
    )

    def some_answers() -> bool:
        return (out / "ledger.sqlite").is_file() and len(answered_keys(out)) >= 4

    wait_for(some_answers, timeout=180, what="the shards answering")
    answered_while_down: list[int] = []
    restart_server(ops_stack, lambda: answered_while_down.append(len(answered_keys(out))))
    assert answered_while_down[0] < 20  # the server went away in the middle of the asking
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert len(answered_keys(out)) == 20 and len(read_jsonl(out / "train.jsonl")) == 20
    assert sorted(asked(teacher).values()) == [1] * 20  # nothing was lost, nothing asked twice
    assert [s["state_type"] for s in shard_runs(ops_stack, run_id)] == ["COMPLETED", "COMPLETED"]
