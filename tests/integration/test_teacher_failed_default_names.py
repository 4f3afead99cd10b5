"""A failed request whose task run kept Prefect's default name (``ask-teacher-ffb``) is listed and re-asked.

Prefect creates a task run under ``<task>-<3 hex>`` and renames it after its data a moment later; a
run can stay listed under the default name for a while, or for good. Here every ``ask-teacher`` run
keeps it for good (the task's run name is switched off for the first run), so nothing can be read
from the names: ``failed`` and ``retry-failed`` must find the refused picture in the ledger.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.teacher import ask_teacher
from tests.support.helpers import chat_requests, make_image, params_for, run_cli
from tests.support.ops_fixtures import wait_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.errors import EXIT_OK, EXIT_SOME_FAILED

REFUSE_ODD_SIZE = [{"kind": "400", "match_image_size": "40x40"}]


def failed_task_runs(flow_run_id: str) -> list[tuple[str, str]]:
    """Return (id, name) of the flow run's failed task runs, as the API lists them now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async def read() -> list[tuple[str, str]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),  # type: ignore[list-item]
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED]))
                ),
            )
        return [(str(run.id), run.name) for run in runs]

    return asyncio.run(read())


def failed_listing(flow_run_id: str) -> dict[str, Any] | None:
    """``vqa-distill failed RUN --json`` once every listed request is tied to its task run; else None."""
    done = run_cli("failed", flow_run_id, "--json")
    assert done.returncode in (EXIT_OK, EXIT_SOME_FAILED), done.stderr
    listing: dict[str, Any] = json.loads(done.stdout)
    images = listing["images"]
    return listing if images and all(image["task_run_id"] for image in images) else None


def test_a_failed_run_under_prefects_default_name_is_listed_and_re_asked(
    teacher: Any, tmp_path: Path, api_key_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    make_image(images / "odd.png", (200, 40, 40), size=(40, 40))  # refused below
    make_image(images / "fine.png", (40, 200, 40), size=(64, 48))
    teacher.set_faults(REFUSE_ODD_SIZE)
    with monkeypatch.context() as patch:
        patch.setattr(ask_teacher, "task_run_name", None)  # every run keeps Prefect's default name
        outcome = run_generate_flow(params_for(images, tmp_path / "run", teacher.base_url), show_progress=False)
    assert outcome.summary is not None and (outcome.summary.failed, outcome.summary.answered_now) == (1, 1)
    run_id = outcome.flow_run_id or ""

    ((task_run_id, name),) = wait_for(lambda: failed_task_runs(run_id), what="the failed task run recorded")
    assert name.startswith("ask-teacher-") and "[" not in name  # nothing in the name says which picture

    listing = wait_for(lambda: failed_listing(run_id), what="the failed request listed with its task run")
    assert listing["images"] == [
        {"file": "odd.png", "reason": listing["images"][0]["reason"], "attempts": 1,
         "task_run_id": task_run_id, "task_run_name": name}
    ]  # fmt: skip
    assert listing["images"][0]["reason"].startswith("PermanentTeacherError: HTTP 400")
    table = run_cli("failed", run_id)
    assert table.returncode == EXIT_SOME_FAILED and "odd.png" in table.stdout

    teacher.set_faults([])
    teacher.reset()
    retried = run_cli("retry-failed", run_id)
    assert retried.returncode == EXIT_OK, retried.stdout + retried.stderr
    assert [r["image_sizes"][0] for r in chat_requests(teacher.stats())] == ["40x40"]  # odd.png only
    assert len((tmp_path / "run" / "train.jsonl").read_text().splitlines()) == 2
