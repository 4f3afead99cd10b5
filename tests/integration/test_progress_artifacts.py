"""A running teacher run shows its progress and its cost/ETA where users look: the Prefect UI, in Chromium.

A ``generate`` run is started from the command line (its own process, as a worker runs one) against
the offline teacher, slowed down so that it runs for half a minute. While it runs, the test reads its
two live artifacts through the Prefect API twice and sees both move; then it loads the flow run's
Artifacts tab and the progress artifact's page from the test's Prefect server (which serves the UI)
in headless Chromium and finds the artifacts in the rendered page, with the run still Running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.chromium import CHROMIUM, chromium_dom, visible_text
from tests.support.helpers import REPO_ROOT, generate_args, make_images
from vqa_distill.progress.text import usd

IMAGES = 60
LATENCY_S = 1.0  # per answer: 60 images two at a time take about 30 s
# Two in flight, and limits far from the way (gpt-4o-mini bills ~8,500 tokens per picture: the default
# 200,000 tokens a minute would hold the run to ~21 requests a minute, three minutes).
PACE = ("--concurrency", "2", "--rpm", "6000", "--tpm", "10000000")
UPDATE_S = 2  # the live artifacts' period for this test (the default, 12 s, would make it minutes long)
RUN_TIMEOUT_S = 240
PROGRESS_KEY, COST_KEY = "teacher-progress", "teacher-cost-eta"


def api(path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the test's Prefect API (POST with a JSON body, else GET)."""
    url = f"{os.environ['PREFECT_API_URL']}{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def run_of(out: Path) -> dict[str, Any] | None:
    """Return the generate flow run that writes into ``out``, once the API has it."""
    for run in api("/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 50}):
        if run["parameters"].get("params", {}).get("out") == str(out):
            return run
    return None


def live_artifacts(flow_run_id: str) -> dict[str, dict[str, Any]]:
    """Return the run's artifacts by key."""
    found = api("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {artifact["key"]: artifact for artifact in found}


def wait_for(check: Any, what: str, timeout_s: float = RUN_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_running_run_shows_its_progress_and_cost_moving_in_the_ui(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    make_images(tmp_path / "images", IMAGES, prefix="live")
    teacher.set_latency(LATENCY_S)
    out = (tmp_path / "out").resolve()
    argv = [sys.executable, "-m", "vqa_distill.cli",
            *generate_args(tmp_path / "images", out, teacher.base_url, *PACE)]  # fmt: skip
    env = {**os.environ, "VQA_DISTILL_LIVE_UPDATE_S": str(UPDATE_S)}
    log = (tmp_path / "generate.log").open("w")
    run = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        flow_run = wait_for(lambda: run_of(out), "the flow run")
        flow_run_id = flow_run["id"]

        def moving() -> dict[str, dict[str, Any]] | None:
            found = live_artifacts(flow_run_id)
            return found if PROGRESS_KEY in found and 0 < found[PROGRESS_KEY]["data"] < 100 else None

        # (a) through the API: the progress value and the cost/ETA table change while the run goes.
        first = wait_for(moving, "the progress artifact to move")
        second = wait_for(lambda: (a := moving()) and a[PROGRESS_KEY]["data"] > first[PROGRESS_KEY]["data"] and a,
                          "a second, larger progress value", timeout_s=60)  # fmt: skip
        assert second[COST_KEY]["data"] != first[COST_KEY]["data"]
        assert second[PROGRESS_KEY]["id"] == first[PROGRESS_KEY]["id"]  # updated in place, not a new version
        table = second[COST_KEY]["data"]
        assert table.startswith("### Teacher run: running, ") and f" of {IMAGES} requests" in table
        spend = re.search(r"\| spend so far \| \$(\d+\.\d+) \|", table)
        assert spend and float(spend.group(1)) > 0
        assert re.search(r"\| requests per minute \| [\d,]+ of 6,000 allowed \|", table)
        assert re.search(r"\| ETA \| \d+ (s|min)", table), table
        progress_id = second[PROGRESS_KEY]["id"]

        # (b) in a real browser: the UI the test's server serves, pointed at that server's API.
        if CHROMIUM.exists():
            base = os.environ["PREFECT_API_URL"].removesuffix("/api")
            with urllib.request.urlopen(f"{base}/ui-settings", timeout=30) as answer:
                assert json.loads(answer.read())["api_url"] == os.environ["PREFECT_API_URL"]
            tab = visible_text(chromium_dom(tmp_path, f"{base}/v2/runs/flow-run/{flow_run_id}?tab=Artifacts"))
            page = visible_text(chromium_dom(tmp_path, f"{base}/artifacts/artifact/{progress_id}"))
            state = api(f"/flow_runs/{flow_run_id}")["state_type"]
            print(f"Artifacts tab: {tab[:1500]}\nProgress artifact page: {page[:800]}")
            assert flow_run["name"] in tab and "Running" in tab, tab[:2000]
            assert PROGRESS_KEY in tab and COST_KEY in tab, tab[:2000]
            assert re.search(rf"\d+ of {IMAGES} requests \(\d+\.\d%\) · spend \$", tab), tab[:2000]
            shown = re.search(r"Progress: (\d+(?:\.\d+)?)%", page)
            assert shown and 0 < float(shown.group(1)) < 100, page[:2000]
            assert state == "RUNNING"  # all of it was seen mid-run

        assert run.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "generate.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
        log.close()

    final = live_artifacts(flow_run_id)
    assert final[PROGRESS_KEY]["data"] == 100.0
    done = final[COST_KEY]["data"]
    assert done.startswith(f"### Teacher run: finished, {IMAGES} of {IMAGES} requests (100.0%)")
    summary = json.loads((out / "summary.json").read_text())
    assert f"| spend so far | {usd(summary['estimated_cost_usd'])} |" in done  # the same figure as the summary
    if not CHROMIUM.exists():
        pytest.skip("the browser part needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)")


def test_the_cli_bar_reads_the_same_line(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    """The terminal's bar shows done/total, then the artifact's words: spend, projected total, ETA."""
    make_images(tmp_path / "images", 3, prefix="bar")
    argv = [a for a in generate_args(tmp_path / "images", tmp_path / "out", teacher.base_url) if a != "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "vqa_distill.cli", *argv], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"3/3 spend \$\d\.\d{4} of ~\$\d\.\d{4} · ETA done", done.stdout + done.stderr), done.stdout[-2000:]
