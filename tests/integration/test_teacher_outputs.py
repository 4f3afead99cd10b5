"""What a run leaves behind: artifacts on the Prefect server, the flow's final state, no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from tests.support.helpers import TEST_API_KEY, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.teacher.endpoint.client import redact


async def read_run(flow_run_id: str) -> tuple[Any, dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))  # type: ignore[list-item]
        )
    return flow_run, {a.key: _decoded(a.data) for a in artifacts}


def _decoded(data: Any) -> Any:
    """Table artifacts are stored as JSON text; markdown ones as plain text."""
    try:
        return json.loads(data) if isinstance(data, str) else data
    except json.JSONDecodeError:
        return data


def test_artifacts_and_final_state_of_a_run_with_failures(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 3)
    make_images(tmp_path / "images", 1, prefix="odd", size=(40, 40))
    teacher.set_faults([{"kind": "400", "match_image_size": "40x40"}])
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    flow_run, artifacts = asyncio.run(read_run(outcome.flow_run_id or ""))
    assert flow_run.state.is_failed()
    assert flow_run.state.message.startswith("1 of 4 requests failed")
    assert {"teacher-summary", "teacher-failed-images", "teacher-dataset"} <= set(artifacts)
    summary = {row["metric"]: row["value"] for row in artifacts["teacher-summary"]}
    assert summary["answered now"] == "3" and summary["failed"] == "1" and summary["estimated cost (gpt-4o-mini)"] != ""
    assert "odd_000.png" in str(artifacts["teacher-failed-images"])
    assert "HTTP 400" in str(artifacts["teacher-failed-images"])
    assert "train.jsonl" in artifacts["teacher-dataset"] and "(3 rows)" in artifacts["teacher-dataset"]


def test_the_failed_images_table_is_published_empty_when_nothing_failed(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    make_images(tmp_path / "images", 2)
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    flow_run, artifacts = asyncio.run(read_run(outcome.flow_run_id or ""))
    assert flow_run.state.is_completed()
    assert "teacher-failed-images" in artifacts
    assert "odd" not in str(artifacts["teacher-failed-images"])
    assert all(values == [] for values in artifacts["teacher-failed-images"].values())


def test_the_key_never_reaches_outputs_results_or_the_prefect_database(
    tmp_path: Path, teacher: Any, api_key_env: str, session_dir: Path
) -> None:
    make_images(tmp_path / "images", 3)
    teacher.set_faults([{"kind": "503", "times": 1}, {"kind": "400", "match_image_size": "40x40"}])
    make_images(tmp_path / "images", 1, prefix="odd", size=(40, 40))
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    flow_run, artifacts = asyncio.run(read_run(outcome.flow_run_id or ""))
    secret = TEST_API_KEY.encode()
    assert secret not in str(flow_run.parameters).encode()
    assert secret not in str(artifacts).encode()
    scanned = 0
    prefect_home = Path(os.environ["PREFECT_HOME"])
    for root in (tmp_path / "out", prefect_home, session_dir / "results"):
        for path in root.rglob("*"):
            if path.is_file():
                assert secret not in path.read_bytes(), f"the API key leaked into {path}"
                scanned += 1
    assert scanned > 5 and any(p.name.startswith("prefect.db") for p in prefect_home.rglob("*"))


def test_redact_removes_the_key_from_messages() -> None:
    assert redact(f"Incorrect API key provided: {TEST_API_KEY}.", TEST_API_KEY) == "Incorrect API key provided: [REDACTED]."
