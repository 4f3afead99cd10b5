"""End to end: the ``evaluate`` deployment run from its form on the stack's gpu-pool, its artifacts in the UI.

A questions-mode dataset is made against the offline teacher, and an answers file gives the student
(the teacher's own answer, a wrong one, a loop, in turn) and the base model (one poor answer), so no
model runs. The form's values (a plain dict of EvalParams fields, the judge's key left to the worker's
OPENAI_API_KEY) are validated by the server's form endpoint, then ``prefect deployment run
evaluate/evaluate`` hands the run to the CPU stand-in gpu-pool worker. The three artifacts are read back
through the API, and the flow run's Artifacts tab is loaded from the stack's own UI in headless Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest

from tests.support.chromium import CHROMIUM, chromium_dom, visible_text
from tests.support.helpers import make_images, params_for
from tests.support.ops_fixtures import OpsStack
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl

SUMMARY_KEY, VERDICT_KEY, PAGE_KEY = "eval-summary", "eval-verdict", "eval-page"
KINDS = {"conversation", "detail", "reasoning"}  # questions=3: one question of each kind per image
WRONG = "It is a purple and orange striped cloth, photographed at night."
LOOP = "The picture is gray and some some some some some some some some"
BASE = "I cannot tell from here."


def make_dataset(tmp_path: Path, base_url: str) -> Path:
    """A questions-mode run (4 images, 3 questions each, half for validation) against the offline teacher."""
    make_images(tmp_path / "images", 4, prefix="evaluated", size=(96, 64))
    params = params_for(tmp_path / "images", tmp_path / "run", base_url, questions=3, val_ratio=0.5)
    summary = run_generate_flow(params, show_progress=False).summary
    assert summary is not None and summary.failed == 0
    return tmp_path / "run" / "val.jsonl"


def write_answers(val: Path, path: Path) -> int:
    """Per row the student gives the teacher's answer, a wrong one, a loop, in turn; the base one poor answer."""
    rows = read_jsonl(val)
    student = [(row["messages"][-1]["content"], WRONG, LOOP)[i % 3] for i, row in enumerate(rows)]
    lines = [{"model": "student", "index": i, "response": a} for i, a in enumerate(student)]
    lines += [{"model": "base", "index": i, "response": BASE} for i in range(len(rows))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return len(rows)


def form_errors(stack: OpsStack, deployment: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """What the UI's form validation (the server's schema endpoint) says about ``parameters``."""
    body = {"schema": deployment["parameter_openapi_schema"], "values": parameters}
    return stack.api("POST", "/ui/schemas/validate", body)


def test_the_evaluate_deployment_runs_from_its_form_and_its_artifacts_show_in_the_ui(
    ops_stack: OpsStack, teacher: Any, api_key_env: str, tmp_path: Path
) -> None:
    val = make_dataset(tmp_path, teacher.base_url)
    rows = write_answers(val, tmp_path / "answers.jsonl")
    assert rows >= 3
    teacher.reset()
    out = tmp_path / "eval"
    params = {
        "dataset": str(val), "answers_file": str(tmp_path / "answers.jsonl"), "out": str(out),
        "base_url": teacher.base_url, "rpm": 6000, "tpm": 10_000_000,
    }  # fmt: skip

    # The form: the deployment's schema describes EvalParams, and the values the form submits pass it.
    deployment = ops_stack.api("GET", "/deployments/name/evaluate/evaluate")
    assert deployment["work_pool_name"] == "gpu-pool" and "gpu" in deployment["tags"]
    schema = deployment["parameter_openapi_schema"]
    assert schema["required"] == ["params"], schema
    checked = form_errors(ops_stack, deployment, {"params": params})
    assert checked["valid"], checked
    too_low = form_errors(ops_stack, deployment, {"params": {**params, "rpm": 0}})
    assert not too_low["valid"], too_low  # EvalParams' bounds reach the form

    run_id = ops_stack.run_deployment("evaluate/evaluate", {"params": params})
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["work_pool_name"] == "gpu-pool"
    assert api_key_env not in json.dumps(run["parameters"])  # the key came from the worker, not the form
    assert teacher.stats()["requests"], "the judge was never asked"

    # (a) Through the API: the three artifacts, keyed, on this flow run.
    found = ops_stack.api("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    artifacts = {artifact["key"]: artifact for artifact in found}
    assert set(artifacts) >= {SUMMARY_KEY, VERDICT_KEY, PAGE_KEY}, sorted(artifacts)
    summary = artifacts[SUMMARY_KEY]
    assert summary["type"] == "table"
    table = summary["data"] if isinstance(summary["data"], list) else json.loads(summary["data"])
    groups = [row["group"] for row in table]
    assert groups[0] == "all" and set(groups) >= KINDS, groups
    assert table[0]["rows"] == str(rows) and table[0]["vs teacher: win/tie/loss"].startswith("0/"), table[0]
    verdict = artifacts[VERDICT_KEY]
    assert verdict["type"] == "markdown"
    assert "win-or-tie" in verdict["data"] and "data:image/png;base64," in verdict["data"]
    page = artifacts[PAGE_KEY]
    link = re.fullmatch(r"\[eval\.html\]\((file://\S+)\)", page["data"])  # Prefect stores a link as markdown
    assert page["type"] == "markdown" and link, page["data"]
    html_path = Path(unquote(urlparse(link.group(1)).path))
    assert html_path == out / "eval.html" and html_path.is_file()
    assert (out / "eval.json").is_file()

    # (b) In a real browser: the stack's UI, pointed at the stack's API, renders the run's Artifacts tab.
    if not CHROMIUM.exists():
        pytest.skip(
            "the browser part needs headless Chromium at /usr/bin/chromium (apt-get install chromium)"
        )
    base = ops_stack.api_url.removesuffix("/api")
    assert httpx.get(f"{base}/ui-settings", timeout=30).json()["api_url"] == ops_stack.api_url
    tab = visible_text(chromium_dom(tmp_path, f"{base}/v2/runs/flow-run/{run_id}?tab=Artifacts"))
    print(f"Artifacts tab: {tab[:2000]}")
    assert run["name"] in tab and "Completed" in tab, tab[:2000]
    assert all(key in tab for key in (SUMMARY_KEY, VERDICT_KEY, PAGE_KEY)), tab[:2000]
    assert summary["description"] in tab, tab[:2000]  # the table's card carries the headline

    # Each artifact's page (the cards' links, on the UI's default version) renders its content.
    shown = visible_text(chromium_dom(tmp_path, f"{base}/artifacts/artifact/{summary['id']}"))
    print(f"Summary page: {shown[:2000]}")
    assert "group rows vs teacher: win/tie/loss vs teacher: win-or-tie [95% CI]" in shown, shown[:2000]
    first = " ".join(list(table[0].values())[:4])  # all, rows, vs teacher: win/tie/loss and its rate
    assert first.startswith("all ") and first in shown, shown[:2000]
    assert all(f" {kind} " in shown for kind in KINDS), shown[:2000]
    dom = chromium_dom(tmp_path, f"{base}/artifacts/artifact/{verdict['id']}")
    shown = visible_text(dom)
    print(f"Verdict page: {shown[:2000]}")
    assert summary["description"] in shown and "asked now" in shown, shown[:2000]  # the verdict's words
    assert "Side by side, worst losses first: eval.html" in shown, shown[:2000]
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom), "the verdict's chart is not rendered"
