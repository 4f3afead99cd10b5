"""A sharded run on the local stack: each shard run and its parent show their progress and cost artifacts.

The shard runs (on the stack's cpu-pool worker) count their own requests; the parent, which only
waits, reads its shards' counts from the ledger before each update. At the end both say 100 % and the
parent's table holds the whole run's answers, failures and spend, the same spend as its summary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.helpers import make_images, teacher_params
from tests.support.ops_fixtures import OpsStack
from vqa_distill.progress.text import usd

REFUSE_ODD_SIZE = [{"kind": "400", "match_image_size": "40x40"}]


def artifacts_of(stack: OpsStack, flow_run_id: str) -> dict[str, dict[str, Any]]:
    """Return a flow run's artifacts by key."""
    found = stack.api("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {artifact["key"]: artifact for artifact in found}


def test_the_parent_and_each_shard_show_their_progress_and_cost(
    ops_stack: OpsStack, teacher: Any, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    make_images(images, 18, prefix="live")
    make_images(images, 2, prefix="odd", size=(40, 40))
    teacher.set_faults(REFUSE_ODD_SIZE)
    teacher.set_latency(0.3)
    out = tmp_path / "run"
    params = {**teacher_params(images, out, teacher.base_url), "shards": 2}
    run_id = ops_stack.run_deployment("generate/generate", {"params": params})
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "FAILED" and "2 of 20 requests failed" in run["state"]["message"], run["state"]

    parent = artifacts_of(ops_stack, run_id)
    assert parent["teacher-progress"]["data"] == 100.0
    table = parent["teacher-cost-eta"]["data"]
    assert table.startswith("### Teacher run: finished, 20 of 20 requests (100.0%)"), table
    assert "| answered now (paid) | 18 |" in table and "| failed | 2 |" in table
    summary = json.loads((out / "summary.json").read_text())
    assert f"| spend so far | {usd(summary['estimated_cost_usd'])} |" in table

    shards = [child for child in ops_stack.child_runs(run_id) if child["parameters"].get("shard_index") is not None]
    assert len(shards) == 2
    answered = 0
    for shard in shards:
        own = artifacts_of(ops_stack, shard["id"])
        assert own["teacher-shard-progress"]["data"] == 100.0
        shard_table = own["teacher-shard-cost-eta"]["data"]
        assert shard_table.startswith("### Teacher shard: finished, "), shard_table
        found = re.search(r"\| answered now \(paid\) \| (\d+) \|", shard_table)
        assert found
        answered += int(found.group(1))
    assert answered == 18
