"""Helpers of the questions-mode tests: pictures the offline teacher tells apart, parameters, what a run left."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, make_image, params_for
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.params import TeacherParams

QA_PROMPT = "Focus on surface defects."
# Distinct sizes (every offline answer names its picture's size) and distinct main colours.
QA_PICTURES: tuple[tuple[tuple[int, int], tuple[int, int, int]], ...] = (
    ((64, 48), (200, 30, 30)),
    ((72, 48), (50, 160, 60)),
    ((80, 60), (40, 90, 210)),
    ((56, 56), (235, 220, 50)),
    ((96, 64), (240, 140, 30)),
    ((48, 64), (120, 50, 160)),
    ((100, 75), (30, 140, 140)),
)


def qa_images(folder: Path, count: int, prefix: str = "qa") -> dict[Path, str]:
    """Write ``count`` pictures of distinct sizes and colours; return each path with its size as ``WxH``."""
    assert count <= len(QA_PICTURES)
    written = {}
    for index, (size, colour) in enumerate(QA_PICTURES[:count]):
        path = make_image(folder / f"{prefix}_{index:02d}.png", colour, size)
        written[path] = f"{size[0]}x{size[1]}"
    return written


def qa_params(images: Path, out: Path, base_url: str, **overrides: Any) -> TeacherParams:
    """Questions-mode parameters against the offline teacher: 3 mixed questions per image unless overridden."""
    values: dict[str, Any] = {"questions": 3, "prompts": [QA_PROMPT]}
    values.update(overrides)
    return params_for(images, out, base_url, **values)


def records_of(out: Path, kind: str) -> list[TeacherRecord]:
    """Return the ledger's records of one kind (questions, answer, judge)."""
    with Ledger(out) as ledger:
        return [record for record in ledger.records() if record.kind == kind]


def questions_by_image(out: Path) -> dict[str, list[str]]:
    """Return each image path's question texts, from the question sets in the ledger."""
    found: dict[str, list[str]] = {}
    for record in records_of(out, "questions"):
        items = json.loads(record.answer or "{}").get("questions", [])
        found.setdefault(record.image_path, []).extend(item["question"] for item in items)
    return found


def asked(stats: dict[str, Any]) -> list[tuple[tuple[str, ...], str, str]]:
    """Return (image fingerprints, user text, model) of every image request the server answered."""
    return [(tuple(r["fingerprints"]), r["user_text"], r["model"]) for r in chat_requests(stats)]


def read_jsonl_lines(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file (an empty file is no line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_artifacts(flow_run_id: str) -> dict[str, Any]:
    """Return the flow run's artifacts by key (markdown as text, tables as JSON)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))  # type: ignore[list-item]
            )
        return {artifact.key: artifact.data for artifact in found}

    return asyncio.run(read())


def task_run_names(flow_run_id: str, expected: int, timeout_s: float = 30.0) -> list[str]:
    """Return the names of the flow run's task runs, waiting until ``expected`` of them are recorded."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200  # type: ignore[list-item]
            )
        return [run.name for run in runs]

    deadline = time.monotonic() + timeout_s
    names = asyncio.run(read())
    while len(names) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        names = asyncio.run(read())
    return names


def count_of(markdown: str, row: str) -> int | None:
    """Return the count in the markdown table row that starts with ``| <row> |``, if any."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == row and len(cells) > 1 and cells[1].isdigit():
            return int(cells[1])
    return None
