"""End to end: the ``distill-loop`` deployment run from its form on the stack's gpu-pool, its rounds in the UI.

Two rounds of the loop on 10 small images: the offline teacher asks and answers (questions mode) and
judges, the tiny Qwen2.5-VL trains two LoRA steps per round on the CPU stand-in gpu-pool worker. The
form's values (a plain dict of DistillParams fields, the key left to the worker's OPENAI_API_KEY) are
validated by the server's form endpoint first. The round subflow runs, the per-round table, the curve
and ``loop.json`` are read back through the API and from disk; then the run's Artifacts tab and each
artifact's page are loaded from the stack's own UI in headless Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_ops_evaluate import form_errors
from tests.support.chromium import CHROMIUM, chromium_dom, visible_text
from tests.support.helpers import TINY_TRAINING, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack

ROUNDS_KEY, CURVE_KEY = "distill-rounds", "distill-curve"
ROUNDS = 2
LOOP_TIMEOUT_S = 420.0  # two rounds of training and judging on the CPU, with the worker's start


def form_params(images: Path, out: Path, base_url: str, tiny_model: Path) -> dict[str, Any]:
    """What the deployment's form submits: the offline teacher, the tiny student, two small rounds."""
    teacher = {**teacher_params(images, out, base_url), "questions": 2}
    student = {
        "model_id_or_path": str(tiny_model), **TINY_TRAINING, "tuner": "lora", "max_pixels": 128 * 128,
        "max_length": 1024,
    }  # fmt: skip
    return {
        "teacher": teacher, "student": student, "rounds": ROUNDS, "seed_share": 0.4, "holdout_share": 0.2,
        "doubt_images": 2, "targeted_items": 3, "probe_rows": 4, "eval_max_new_tokens": 16, "budget_requests": 200,
    }  # fmt: skip


def artifacts_of(stack: OpsStack, run_id: str) -> dict[str, dict[str, Any]]:
    """The flow run's artifacts, latest version per key."""
    found = stack.api(
        "POST",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "sort": "CREATED_DESC"},
    )
    artifacts: dict[str, dict[str, Any]] = {}
    for artifact in found:
        artifacts.setdefault(artifact["key"], artifact)
    return artifacts


def test_the_distill_loop_deployment_runs_from_its_form_and_its_rounds_show_in_the_ui(
    ops_stack: OpsStack, teacher: Any, tiny_model: Path, tmp_path: Path
) -> None:
    make_images(tmp_path / "images", 10, prefix="loop", size=(96, 64))
    out = tmp_path / "loop"
    params = form_params(tmp_path / "images", out, teacher.base_url, tiny_model)

    # The form: the deployment's schema describes DistillParams, and the values the form submits pass it.
    deployment = ops_stack.api("GET", "/deployments/name/distill-loop/distill-loop")
    assert deployment["work_pool_name"] == "gpu-pool" and "gpu" in deployment["tags"]
    assert deployment["parameter_openapi_schema"]["required"] == ["params"]
    checked = form_errors(ops_stack, deployment, {"params": params})
    assert checked["valid"], checked
    too_few = form_errors(ops_stack, deployment, {"params": {**params, "rounds": 0}})
    assert not too_few["valid"], too_few  # DistillParams' bounds reach the form

    run_id = ops_stack.run_deployment("distill-loop/distill-loop", {"params": params})
    run = ops_stack.wait_final(run_id, timeout=LOOP_TIMEOUT_S)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["work_pool_name"] == "gpu-pool"
    assert teacher.stats()["requests"], "the teacher was never asked"

    # (a) Through the API: one linked distill-round subflow run per round.
    children = ops_stack.child_runs(run_id)
    flow_names = {
        child["flow_id"]: ops_stack.api("GET", f"/flows/{child['flow_id']}")["name"] for child in children
    }
    rounds = sorted(
        (c for c in children if flow_names[c["flow_id"]] == "distill-round"), key=lambda c: c["name"]
    )
    assert [c["name"] for c in rounds] == ["round 0", "round 1"], [
        (c["name"], flow_names[c["flow_id"]]) for c in children
    ]
    for child in rounds:
        assert child["state_type"] == "COMPLETED" and child["parent_task_run_id"], child
        link = ops_stack.api("GET", f"/task_runs/{child['parent_task_run_id']}")
        assert link["flow_run_id"] == run_id  # the subflow's stand-in task run sits in the loop's run

    # The per-round table and the curve, on the loop's run.
    artifacts = artifacts_of(ops_stack, run_id)
    assert set(artifacts) >= {ROUNDS_KEY, CURVE_KEY}, sorted(artifacts)
    table_artifact, curve = artifacts[ROUNDS_KEY], artifacts[CURVE_KEY]
    assert table_artifact["type"] == "table"
    data = table_artifact["data"]
    table = data if isinstance(data, list) else json.loads(data)
    assert [row["round"] for row in table] == [0, 1], table
    spend, rate = "teacher spend (USD, total)", "win-or-tie vs teacher [95% CI]"
    for row in table:
        assert re.fullmatch(r"\d+\.\d{4}", row[spend]), row
        assert re.fullmatch(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", row[rate]), row
    assert float(table[1][spend]) >= float(table[0][spend]) > 0, table  # a running total
    assert [bool(row["stop"]) for row in table] == [False, True], table  # the last round says why it stopped
    assert curve["type"] == "markdown" and "data:image/png;base64," in curve["data"], curve["data"][:300]

    # On disk: loop.json lists both rounds.
    state = json.loads((out / "loop.json").read_text(encoding="utf-8"))
    assert [record["round"] for record in state["rounds"]] == [0, 1], state["rounds"]
    assert all(record["checkpoint"] and record["win_or_tie"] is not None for record in state["rounds"])

    # (b) In a real browser: the stack's UI renders the loop run's Artifacts tab and each artifact's page.
    if not CHROMIUM.exists():
        pytest.skip(
            "the browser part needs headless Chromium at /usr/bin/chromium (apt-get install chromium)"
        )
    base = ops_stack.api_url.removesuffix("/api")
    assert httpx.get(f"{base}/ui-settings", timeout=30).json()["api_url"] == ops_stack.api_url
    tab = visible_text(chromium_dom(tmp_path, f"{base}/v2/runs/flow-run/{run_id}?tab=Artifacts"))
    print(f"Artifacts tab: {tab[:2000]}")
    assert run["name"] in tab and "Completed" in tab, tab[:2000]
    assert ROUNDS_KEY in tab and CURVE_KEY in tab, tab[:2000]
    assert table_artifact["description"] in tab and curve["description"] in tab, tab[:2000]

    shown = visible_text(chromium_dom(tmp_path, f"{base}/artifacts/artifact/{table_artifact['id']}"))
    print(f"Rounds page: {shown[:2000]}")
    assert " ".join(table[0]) in shown, shown[:2000]  # the header: round, spend, ..., stop
    for row in table:  # each round's row, from its number to its rate
        cells = [str(value) for value in row.values()][:7]
        assert " ".join(cells) in shown, (cells, shown[:2000])
    dom = chromium_dom(tmp_path, f"{base}/artifacts/artifact/{curve['id']}")
    print(f"Curve page: {visible_text(dom)[:1000]}")
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom), "the curve is not rendered"
