"""End to end: the local stack, the pipeline deployment run like a user runs it, training on gpu-pool.

``vqa-distill stack up`` starts a real Prefect server on a free loopback port, applies the pools,
the gpu limit and prefect.yaml's deployments, and starts a cpu-pool worker and a CPU stand-in
gpu-pool worker. ``prefect deployment run pipeline/pipeline`` then asks the offline teacher, builds
the dataset and hands training of the tiny model to the ``train`` deployment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.helpers import TINY_TRAINING, chat_requests, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack
from vqa_distill.dataset.build import read_jsonl


# A few steps of LoRA on the CPU: enough to write an adapter, seconds not minutes.
def test_pipeline_deployment_trains_on_the_gpu_pool(
    ops_stack: OpsStack, teacher: Any, tiny_model: Path, tmp_path: Path
) -> None:
    make_images(tmp_path / "images", 4)
    run_id = ops_stack.run_deployment(
        "pipeline/pipeline",
        {
            "teacher": teacher_params(tmp_path / "images", tmp_path / "run", teacher.base_url),
            "student": {"model_id_or_path": str(tiny_model), **TINY_TRAINING},
        },
    )
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert len(chat_requests(teacher.stats())) == 4

    # The GPU step ran as a linked subflow run of the train deployment, on gpu-pool.
    children = {child["name"]: child for child in ops_stack.child_runs(run_id)}
    train_runs = [c for c in children.values() if c["deployment_id"]]
    assert len(train_runs) == 1, children
    train_run = train_runs[0]
    train_deployment = ops_stack.api("GET", "/deployments/name/train/train")
    assert train_run["deployment_id"] == train_deployment["id"]
    assert train_run["work_pool_name"] == "gpu-pool" and "gpu" in train_run["tags"]
    assert train_run["state_type"] == "COMPLETED" and train_run["parent_task_run_id"]

    # `failed` given the pipeline's id looks at its teacher subflow run: nothing failed.
    listing = ops_stack.cli("failed", run_id, "--json")
    assert listing.returncode == 0, listing.stderr
    teacher_run = json.loads(listing.stdout)
    assert teacher_run["flow_run_id"] in {c["id"] for c in children.values()} and teacher_run["images"] == []

    # A dataset and an adapter exist where the pipeline put them.
    rows = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert len(rows) == 4 and all(Path(row["images"][0]).is_file() for row in rows)
    adapters = list((tmp_path / "run" / "checkpoints").glob("v*/checkpoint-*/adapter_model.safetensors"))
    assert len(adapters) == 1

    # The nightly schedule is on the server, with its time zone.
    nightly = ops_stack.api("GET", "/deployments/name/nightly-refresh/nightly-refresh")
    schedules = [s["schedule"] for s in nightly["schedules"] if s["active"]]
    assert schedules and schedules[0]["cron"] and schedules[0]["timezone"]
    assert nightly["work_pool_name"] == "cpu-pool"


def test_stack_status_and_idempotent_deploy(ops_stack: OpsStack) -> None:
    status = ops_stack.cli("stack", "status", "--home", str(ops_stack.home), "--json")
    assert status.returncode == 0, status.stderr
    processes = json.loads(status.stdout)["processes"]
    assert set(processes) == {"prefect-server", "cpu-worker", "gpu-worker"}
    assert all(p["running"] for p in processes.values())
    before = {d["name"]: d["id"] for d in ops_stack.api("POST", "/deployments/filter", {})}
    again = ops_stack.cli("deploy")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "work pool gpu-pool (process): updated" in again.stdout
    after = {d["name"]: d["id"] for d in ops_stack.api("POST", "/deployments/filter", {})}
    assert after == before  # same deployments, updated in place
    assert {"pipeline", "nightly-refresh", "train", "retry-failed", "generate"} <= set(after)
    limits = ops_stack.api("POST", "/concurrency_limits/filter", {})
    assert [(limit["tag"], limit["concurrency_limit"]) for limit in limits] == [("gpu", 1)]
    pools = {p["name"]: p["type"] for p in ops_stack.api("POST", "/work_pools/filter", {})}
    assert pools["cpu-pool"] == "process" and pools["gpu-pool"] == "process"
