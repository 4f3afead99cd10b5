"""Find a teacher run's failed requests, and the request keys that re-ask them.

A run is named by its flow run id or ``latest`` (the most recent ``generate`` flow run). A pipeline,
nightly-refresh or retry-failed run is resolved to the ``generate`` run inside it, so any id the UI
shows works. A sharded run's requests are asked in its ``teacher-shard`` child runs: the latest try
of each shard in the parent's latest attempt counts (``teacher/prefect_runs/shard_runs.py``).

Which requests failed is read from the run folder's ledger (found through the run's ``params.out``
parameter), the source of truth: each failure is recorded with its image, its reason and the flow
run that tried it. The Prefect API adds each one's failed task run, for people, and the failed task
runs that left no record (a crash before recording). Names are for people, not for finding images:
Prefect lists a task run under its default name (``ask-teacher-ffb``) until the rename after its data
(``ask-teacher[<file>]``) reaches the API, or for good when it never does, and it stores no task
parameters. Only a failed task run with no record is listed by the image its name gives, else with
an empty file and its task run id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from vqa_distill.errors import ConfigError, FatalRunError, LedgerUnavailable
from vqa_distill.teacher.ledger.records import (
    STATUS_FAILED,
    Ledger,
    TeacherRecord,
    ledger_exists,
)
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.prefect_runs.matching import (
    UNKNOWN_FILE,
    FailedImage,
    file_of,
    identify,
    reason_of,
    task_of,
)
from vqa_distill.teacher.prefect_runs.shard_runs import SHARD_FLOW, current_shard_runs

__all__ = [
    "LATEST", "UNKNOWN_FILE", "FailedImage", "FailedRun", "file_of", "find_failed", "identify", "keys_to_retry",
    "reason_of", "task_of", "teacher_params_of",
]

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, TaskRun

GENERATE_FLOW = "generate"
LATEST = "latest"
PAGE_SIZE = 200  # the server's default page limit; failures are read page by page
FAILED_STATE_TYPES = ("FAILED", "CRASHED")
@dataclass(frozen=True)
class FailedRun:
    """A teacher flow run, where it wrote, and its failed requests."""

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


async def read_failed_task_runs(client: PrefectClient, flow_run_id: UUID) -> list[TaskRun]:
    """Return the failed (or crashed) teacher-stage task runs of one flow run, whatever their names."""
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
    runs: list[TaskRun] = []
    offset = 0
    while True:
        page = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=failed_states,
            sort=TaskRunSort.NAME_ASC,
            limit=PAGE_SIZE,
            offset=offset,
        )
        runs += [run for run in page if task_of(run.name) is not None]
        if len(page) < PAGE_SIZE:
            return runs
        offset += PAGE_SIZE


def ledger_failures(out: str | None, flow_run_ids: Iterable[str]) -> list[TeacherRecord]:
    """Return the records still failed whose last attempt belonged to one of the runs (none without a ledger here)."""
    if not out or not ledger_exists(out):
        return []
    try:
        with Ledger(out) as ledger:
            return [record for run_id in flow_run_ids for record in ledger.failed_in_run(run_id)]
    except LedgerUnavailable as exc:
        raise FatalRunError(f"cannot read the ledger of the run folder {out}: {exc}") from exc


async def find_failed(ref: str) -> FailedRun:
    """Resolve ``ref`` on the configured Prefect API and list that run's failed requests."""
    import httpx
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        try:
            run = await resolve_teacher_run(client, ref)
            shards = await current_shard_runs(client, run.id)
            task_runs = [task_run for r in (run, *shards) for task_run in await read_failed_task_runs(client, r.id)]
        except httpx.TransportError as exc:
            raise FatalRunError(f"cannot reach the Prefect API at {client.api_url}: {exc}") from exc
    parameters = dict(run.parameters or {})
    out = (parameters.get("params") or {}).get("out")
    records = ledger_failures(out, [str(r.id) for r in (run, *shards)])
    return FailedRun(
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        state=(run.state.name if run.state else None) or "unknown",
        out=str(out) if out else None,
        images=identify(task_runs, records),
        shard_run_ids=[str(shard.id) for shard in shards],
        parameters=parameters,
    )


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
    the bare file name: ``a/x.jpg`` is not ``b/x.jpg``) is among the run's failed requests count too.
    Answered keys are never returned: the ledger never turns an answer back into a failure.
    """
    if not ledger_exists(out):
        raise FatalRunError(
            f"no ledger for the run folder {out}: not on this machine, or the run used a shared ledger "
            "(set VQA_DISTILL_LEDGER_URL, or pass --ledger-url, as the run had it)"
        )
    paths = set(failed_paths) - {UNKNOWN_FILE}
    runs = {flow_run_ids} if isinstance(flow_run_ids, str) else set(flow_run_ids)
    with Ledger(out) as ledger:
        return [
            record.key
            for record in ledger.records(STATUS_FAILED)
            if record.flow_run_id in runs or record.rel_path in paths
        ]
