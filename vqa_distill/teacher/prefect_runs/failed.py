"""Find a teacher run's failed images through the Prefect API, and the request keys that re-ask them.

A run is named by its flow run id or ``latest`` (the most recent ``generate`` flow run). A pipeline,
nightly-refresh or retry-failed run is resolved to the ``generate`` run inside it, so any id the UI
shows works. A sharded run's task runs live in its ``teacher-shard`` child runs: the latest try of each
shard in the parent's latest attempt counts (``teacher/prefect_runs/shard_runs.py``). The Prefect API says which images failed and why (one ``ask-teacher[<file>]`` task run
per image, its state message carrying the HTTP status and the API's message, or the decode error);
the run folder's ledger, found through the run's ``params.out`` parameter, holds the request keys.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.teacher.ledger.records import STATUS_FAILED, Ledger, ledger_exists
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.prefect_runs.shard_runs import SHARD_FLOW, current_shard_runs

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, TaskRun

GENERATE_FLOW = "generate"
LATEST = "latest"
PAGE_SIZE = 200  # the server's default page limit; failures are read page by page
FAILED_STATE_TYPES = ("FAILED", "CRASHED")

# ask-teacher[<path>], ask-teacher[<path> #k] (a generated question), ask-questions[<path>], judge-answer[<path> #k]
_TASK_RUN_NAME = re.compile(r"^(?:ask-teacher|ask-questions|judge-answer)\[(?P<file>.*?)(?: #\d+)?\]$")
# Prefect prefixes a failed task's message with this; the rest is "ErrorClass: what the API said".
_PREFECT_PREFIX = "Task run encountered an exception "


@dataclass(frozen=True)
class FailedImage:
    """One failed ask-teacher task run: the image's path in its folder, why it failed, and how many attempts."""

    file: str
    reason: str
    attempts: int
    task_run_id: str


@dataclass(frozen=True)
class FailedRun:
    """A teacher flow run, where it wrote, and its failed images."""

    flow_run_id: str
    flow_run_name: str
    state: str
    out: str | None
    images: list[FailedImage] = field(default_factory=list)
    shard_run_ids: list[str] = field(default_factory=list)  # a sharded run: the shard runs that count now
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Return the run as JSON-ready data (what ``vqa-distill failed --json`` prints)."""
        data = asdict(self)
        data.pop("parameters")
        return data


def file_of(task_run_name: str) -> str | None:
    """Return the image's relative path named by a teacher-stage task run (``ask-teacher[<path> #k]``...), else None."""
    match = _TASK_RUN_NAME.match(task_run_name)
    return match.group("file") if match else None


def reason_of(state_message: str | None) -> str:
    """Return the useful part of a failed task run's state message (without Prefect's prefix)."""
    message = (state_message or "failed, no message recorded").strip()
    return message.removeprefix(_PREFECT_PREFIX)


def failed_image(task_run: TaskRun) -> FailedImage | None:
    """Describe a failed ask-teacher task run; None for any other task."""
    file = file_of(task_run.name)
    if file is None:
        return None
    return FailedImage(
        file=file,
        reason=reason_of(task_run.state.message if task_run.state else None),
        attempts=max(task_run.run_count, 1),
        task_run_id=str(task_run.id),
    )


async def resolve_teacher_run(client: PrefectClient, ref: str) -> FlowRun:
    """Return the ``generate`` flow run that ``ref`` (an id or ``latest``) names.

    Raises ConfigError for a malformed id and FatalRunError when no such run exists.
    """
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    generate_only = FlowFilter(name=FlowFilterName(any_=[GENERATE_FLOW]))
    if ref == LATEST:
        runs = await client.read_flow_runs(flow_filter=generate_only, sort=FlowRunSort.START_TIME_DESC, limit=1)
        if not runs:
            raise FatalRunError(f"no '{GENERATE_FLOW}' flow run on the Prefect server at {client.api_url}")
        return runs[0]
    try:
        run_id = UUID(ref)
    except ValueError as exc:
        raise ConfigError(f"{ref!r} is neither a flow run id nor '{LATEST}'") from exc
    try:
        run = await client.read_flow_run(run_id)
    except ObjectNotFound as exc:
        raise FatalRunError(f"no flow run {ref} on the Prefect server at {client.api_url}") from exc
    if (await client.read_flow(run.flow_id)).name in (GENERATE_FLOW, SHARD_FLOW):  # a shard: its own failures
        return run
    # A pipeline, nightly-refresh or retry-failed run: its teacher step is a generate subflow run.
    children = await client.read_flow_runs(
        flow_filter=generate_only,
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    if not children:
        raise FatalRunError(f"flow run {ref} ({run.name}) is not a teacher run and started none")
    return children[0]


async def read_failed_images(client: PrefectClient, flow_run_id: UUID) -> list[FailedImage]:
    """Return the failed (or crashed) ask-teacher task runs of one flow run, sorted by file name."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import TaskRunSort

    failed_states = TaskRunFilter(
        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType(t) for t in FAILED_STATE_TYPES]))
    )
    images: list[FailedImage] = []
    offset = 0
    while True:
        page = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=failed_states,
            sort=TaskRunSort.NAME_ASC,
            limit=PAGE_SIZE,
            offset=offset,
        )
        images += [image for image in map(failed_image, page) if image is not None]
        if len(page) < PAGE_SIZE:
            return images
        offset += PAGE_SIZE


async def find_failed(ref: str) -> FailedRun:
    """Resolve ``ref`` on the configured Prefect API and list that run's failed images."""
    import httpx
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        try:
            run = await resolve_teacher_run(client, ref)
            images = await read_failed_images(client, run.id)
            shards = await current_shard_runs(client, run.id)
            for shard in shards:
                images = merge_failed(images, await read_failed_images(client, shard.id))
        except httpx.TransportError as exc:
            raise FatalRunError(f"cannot reach the Prefect API at {client.api_url}: {exc}") from exc
    parameters = dict(run.parameters or {})
    out = (parameters.get("params") or {}).get("out")
    if (parameters.get("params") or {}).get("batch"):  # batch lines have no task run: the ledger says
        images = merge_failed(images, batch_failures(out, str(run.id)))
    return FailedRun(
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        state=(run.state.name if run.state else None) or "unknown",
        out=str(out) if out else None,
        images=images,
        shard_run_ids=[str(shard.id) for shard in shards],
        parameters=parameters,
    )


def batch_failures(out: str | None, flow_run_id: str) -> list[FailedImage]:
    """Return the failed records of a Batch API run, by image, from its ledger (none when not on this machine)."""
    if not out or not ledger_exists(out):
        return []
    with Ledger(out) as ledger:
        return [
            FailedImage(
                file=record.rel_path,
                reason=f"{record.error_class}: {record.error_message}"
                + (f" (batch {record.batch_id})" if record.batch_id else ""),
                attempts=max(record.attempts, 1),
                task_run_id="",
            )
            for record in ledger.failed_in_run(flow_run_id)
        ]


def merge_failed(images: list[FailedImage], more: list[FailedImage]) -> list[FailedImage]:
    """Add ``more`` failed images to ``images`` (an image listed once), sorted by file."""
    listed = {image.file for image in images}
    return sorted([*images, *(image for image in more if image.file not in listed)], key=lambda image: image.file)


def teacher_params_of(run: FailedRun) -> TeacherParams:
    """Return the TeacherParams the run was started with (its ``params`` parameter)."""
    values = run.parameters.get("params")
    if not isinstance(values, dict):
        raise FatalRunError(f"flow run {run.flow_run_id} has no 'params' parameter to re-run with")
    return TeacherParams.model_validate(values)


def keys_to_retry(out: str | Path, flow_run_ids: str | Collection[str], failed_paths: Iterable[str]) -> list[str]:
    """Return the request keys still failed that the run (or its shard runs: give every id) failed on.

    A record carries the id of the run that last tried it; a later run (an earlier retry) may have
    re-recorded it, so records still failed whose image path (relative to the images folder, never
    the bare file name: ``a/x.jpg`` is not ``b/x.jpg``) is among the run's failed task runs count too.
    Answered keys are never returned: the ledger never turns an answer back into a failure.
    """
    if not ledger_exists(out):
        raise FatalRunError(
            f"no ledger for the run folder {out}: not on this machine, or the run used a shared ledger "
            "(set VQA_DISTILL_LEDGER_URL, or pass --ledger-url, as the run had it)"
        )
    paths = set(failed_paths)
    runs = {flow_run_ids} if isinstance(flow_run_ids, str) else set(flow_run_ids)
    with Ledger(out) as ledger:
        return [
            record.key
            for record in ledger.records(STATUS_FAILED)
            if record.flow_run_id in runs or record.rel_path in paths
        ]
