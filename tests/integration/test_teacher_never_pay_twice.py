"""Never pay twice: reruns, other folders, crashes and duplicate bytes send no answered request again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO_ROOT, chat_requests, generate_args, make_images, params_for
from tests.support.row_pictures import original_of
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, Ledger


def test_a_second_run_sends_nothing_and_creates_no_task_runs(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 6)
    params = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url)
    first = run_generate_flow(params, show_progress=False)
    assert first.summary is not None and first.summary.answered_now == 6
    teacher.reset()
    second = run_generate_flow(params, show_progress=False)
    assert second.summary is not None
    assert (second.summary.answered_now, second.summary.already_answered) == (0, 6)
    assert teacher.stats()["totals"]["requests"] == 0  # not even the preflight
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 6

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def task_runs_of(flow_run_id: str) -> int:
        """The ask-teacher task runs of a flow run (publish-artifacts runs every time and asks nothing)."""
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return sum(1 for run in runs if run.name.startswith("ask-teacher["))

    import asyncio

    # Task runs reach the server as events, recorded in batches: wait for the first run's six.
    deadline = time.monotonic() + 20
    while asyncio.run(task_runs_of(first.flow_run_id or "")) < 6 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert asyncio.run(task_runs_of(first.flow_run_id or "")) == 6
    assert asyncio.run(task_runs_of(second.flow_run_id or "")) == 0


def test_another_folder_with_the_same_pictures_is_answered_from_the_cache(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    images = make_images(tmp_path / "images", 3)
    run_generate_flow(params_for(tmp_path / "images", tmp_path / "out1", teacher.base_url), show_progress=False)
    teacher.reset()
    copies = tmp_path / "renamed copies"
    copies.mkdir()
    for index, image in enumerate(images):
        (copies / f"copy {index}.png").write_bytes(image.read_bytes())
    outcome = run_generate_flow(params_for(copies, tmp_path / "out2", teacher.base_url), show_progress=False)
    assert outcome.summary is not None and outcome.summary.already_answered == 3
    assert chat_requests(teacher.stats()) == []
    rows = read_jsonl(tmp_path / "out2" / "train.jsonl")
    named = sorted(original_of(row["images"][0], copies.iterdir()).name for row in rows)
    assert named == ["copy 0.png", "copy 1.png", "copy 2.png"]


def test_a_changed_prompt_or_parameter_is_a_new_question(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 2)
    run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    teacher.reset()
    changed = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url, max_tokens=300)
    outcome = run_generate_flow(changed, show_progress=False)
    assert outcome.summary is not None and outcome.summary.answered_now == 2
    assert len(chat_requests(teacher.stats())) == 2


def test_a_run_killed_mid_way_resumes_with_only_the_unanswered(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    count = 16
    make_images(tmp_path / "images", count)
    teacher.set_latency(0.25)
    argv = [sys.executable, "-m", "vqa_distill.cli", *generate_args(tmp_path / "images", tmp_path / "out",
                                                                     teacher.base_url, "--concurrency", "2")]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    ledger_path = tmp_path / "out" / "ledger.sqlite"
    deadline = time.monotonic() + 120
    answered_before: set[str] = set()
    while time.monotonic() < deadline and len(answered_before) < 5:
        time.sleep(0.1)
        if ledger_path.exists():
            with Ledger(tmp_path / "out") as ledger:
                answered_before = {r.sha256 for r in ledger.records(STATUS_ANSWERED)}
    process.send_signal(signal.SIGKILL)
    process.wait()
    with Ledger(tmp_path / "out") as ledger:
        answered_keys = ledger.done_keys()
        answered_images = {r.image_path for r in ledger.records(STATUS_ANSWERED)}
    assert 5 <= len(answered_keys) < count, "the run was not killed mid-way"
    teacher.reset()
    teacher.set_latency(0.0)
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None
    assert outcome.summary.already_answered == len(answered_keys)
    assert outcome.summary.answered_now == count - len(answered_keys)
    assert len(chat_requests(teacher.stats())) == count - len(answered_keys)
    with Ledger(tmp_path / "out") as ledger:
        resent = {r.image_path for r in ledger.records(STATUS_ANSWERED) if r.flow_run_id == outcome.flow_run_id}
    assert resent.isdisjoint(answered_images)
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == count
