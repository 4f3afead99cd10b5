"""Batch mode on the local stack: the nightly refresh submits to the Batch API, a collect-batches run collects.

The deployments run on the stack's cpu-pool worker, as the schedule would start them; the next
collect tick is simulated by running the collect-batches deployment once the batch has finished.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from tests.support.batch_helpers import fast_batches, wait_batches_final
from tests.support.helpers import chat_requests, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack
from vqa_distill.dataset.build import read_jsonl


def test_the_nightly_refresh_submits_and_collect_batches_collects(
    ops_stack: OpsStack, teacher: Any, tmp_path: Path
) -> None:
    fast_batches(teacher)
    images, out = tmp_path / "images", tmp_path / "nightly"
    make_images(images, 3)
    teacher_run = {**teacher_params(images, out, teacher.base_url), "batch": True}
    nightly_id = ops_stack.run_deployment(
        "nightly-refresh/nightly-refresh", {"teacher": teacher_run, "train_when_changed": False}
    )
    nightly = ops_stack.wait_final(nightly_id)
    assert nightly["state_type"] == "COMPLETED", nightly["state"]
    assert chat_requests(teacher.stats()) == []  # nothing was asked online
    [batch] = wait_batches_final(teacher)
    assert (batch["status"], batch["total"]) == ("completed", 3)
    assert not (out / "versions").exists()  # no answers yet: no version

    collect_id = ops_stack.run_deployment("collect-batches/collect-batches", {"outs": [str(out)]})
    collected = ops_stack.wait_final(collect_id)
    assert collected["state_type"] == "COMPLETED", collected["state"]
    assert len(read_jsonl(out / "train.jsonl")) == 3
    version = out / "versions" / date.today().isoformat()
    assert len(read_jsonl(version / "train.jsonl")) == 3  # published, as the nightly refresh would
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answered_now"] == 3 and summary["batch"]["batch_ids"] == [batch["id"]]

    artifacts = ops_stack.api(
        "POST", "/artifacts/filter",
        {"artifacts": {"key": {"any_": ["teacher-batches"]}, "flow_run_id": {"any_": [collect_id]}}},
    )  # fmt: skip
    [listing] = artifacts
    assert batch["id"] in json.dumps(listing["data"]) and "completed" in json.dumps(listing["data"])
