"""What an ask-teacher task run writes to the Prefect API: its run and its retries, not a closing line per success.

The engine's "Finished in state Completed()" was the only log line of a successful run and cost CPU
on both sides for every image (docs/performance.md); the lines a user needs in the UI stay: why a
run was retried, and every per-image task run under its image's name.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow

RECORDED_WITHIN_S = 30.0  # logs and task runs reach the API a moment after the flow run ends


async def run_logs_and_task_runs(flow_run_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the flow run's log messages and its ask-teacher runs as (name, state name), from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    asked = [run for run in runs if run.name.startswith("ask-teacher[")]
    return [log.message for log in logs], [(run.name, run.state.name if run.state else "") for run in asked]


def recorded(flow_run_id: str, expected_runs: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Poll the API until the retry line and every task run in a final state are there."""
    deadline = time.monotonic() + RECORDED_WITHIN_S
    while True:
        messages, runs = asyncio.run(run_logs_and_task_runs(flow_run_id))
        finished = [run for run in runs if run[1] in {"Completed", "Cached"}]
        if (len(finished) == expected_runs and any("Retry 1/" in m for m in messages)) or time.monotonic() > deadline:
            return messages, runs
        time.sleep(0.5)


def test_a_run_logs_its_retries_but_no_closing_line_per_success(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 3)
    teacher.set_faults([{"kind": "503", "times": 1}])  # the first request fails once, then is answered
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None and outcome.summary.answered_now == 3
    assert outcome.summary.flow_run_id is not None
    messages, runs = recorded(outcome.summary.flow_run_id, expected_runs=3)
    assert sorted(name for name, _ in runs) == [f"ask-teacher[img_{i:03d}.png]" for i in range(3)]
    assert {state for _, state in runs} == {"Completed"}
    assert any("Retry 1/" in message for message in messages), messages  # why the run was retried stays visible
    assert not any(message.startswith("Finished in state Completed") for message in messages), messages
