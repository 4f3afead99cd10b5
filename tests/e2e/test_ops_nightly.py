"""The nightly refresh on the local stack: only new images are asked for, each change is a new dated version."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from tests.support.helpers import TINY_TRAINING, chat_requests, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack
from tests.support.row_pictures import original_of
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.teacher.params import TeacherParams


def refresh(stack: OpsStack, teacher: Any, images: Path, out: Path) -> int:
    """Run the nightly-refresh deployment once (no training); return how many images the teacher was asked about."""
    teacher.reset()
    run_id = stack.run_deployment(
        "nightly-refresh/nightly-refresh",
        {"teacher": teacher_params(images, out, teacher.base_url), "train_when_changed": False},
    )
    run = stack.wait_final(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    return len(chat_requests(teacher.stats()))


def test_a_second_refresh_asks_only_for_the_new_images(ops_stack: OpsStack, teacher: Any, tmp_path: Path) -> None:
    images, out = tmp_path / "images", tmp_path / "nightly"
    make_images(images, 3)
    assert refresh(ops_stack, teacher, images, out) == 3
    today = date.today().isoformat()
    assert sorted(p.name for p in (out / "versions").iterdir()) == [today]

    make_images(images, 2, prefix="new")
    assert refresh(ops_stack, teacher, images, out) == 2  # exactly the two new ones
    versions = sorted(p.name for p in (out / "versions").iterdir())
    assert versions == [today, f"{today}.2"]
    assert len(read_jsonl(out / "versions" / today / "train.jsonl")) == 3  # the old version is untouched
    new_rows = read_jsonl(out / "versions" / f"{today}.2" / "train.jsonl")
    originals = list(images.iterdir())
    new_names = [original_of(row["images"][0], originals).name for row in new_rows]
    assert len(new_rows) == 5 and sum(name.startswith("new_") for name in new_names) == 2

    assert refresh(ops_stack, teacher, images, out) == 0  # nothing new: no call, no new version
    assert sorted(p.name for p in (out / "versions").iterdir()) == versions


def test_a_changed_dataset_is_trained_on_in_process_from_its_version(
    teacher: Any, api_key_env: str, tiny_model: Path, tmp_path: Path
) -> None:
    """train_when_changed with hand_off.in_process: the flow trains the new version itself, as a subflow."""
    import asyncio

    from flows.nightly import nightly_refresh
    from vqa_distill.student.handoff import HandOff, StudentOptions

    make_images(tmp_path / "images", 3)
    student = StudentOptions(model_id_or_path=str(tiny_model), **TINY_TRAINING)
    state = asyncio.run(
        nightly_refresh(  # type: ignore[call-overload]
            teacher=TeacherParams(**teacher_params(tmp_path / "images", tmp_path / "nightly", teacher.base_url)),
            student=student,
            train_when_changed=True,
            hand_off=HandOff(in_process=True),
            return_state=True,
        )
    )
    result = state.result(_sync=True)
    assert result.asked == 3 and result.version == date.today().isoformat()
    assert result.training is not None and result.training.checkpoint is not None
    checkpoint = Path(result.training.checkpoint)
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert checkpoint.is_relative_to(tmp_path / "nightly" / "checkpoints")
    args = json.loads((checkpoint.parent / "args.json").read_text(encoding="utf-8"))
    assert args["dataset"] == [str(tmp_path / "nightly" / "versions" / result.version / "train.jsonl")]
    assert asyncio.run(subflow_names(state.state_details.flow_run_id)) == ["generate", "train"]


async def subflow_names(flow_run_id: Any) -> list[str]:
    """The flow names of a flow run's subflow runs on the session's server, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC,
        )
        return [(await client.read_flow(run.flow_id)).name for run in runs]
