"""Find the ``teacher-shard`` runs of a sharded teacher run through the Prefect API: the ones that count now.

A parent may have many shard runs: a crashed shard is started again, and the UI's Retry of the
parent starts a new round. Each shard run carries an idempotency key that the parent sets to
``<parent id>:<parent run count>:<shard index>:<try>`` (``start_shard_run``), so the runs of the
parent's latest attempt, and the latest try of each shard, are picked without comparing clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

SHARD_FLOW = "teacher-shard"
SHARD_DEPLOYMENT = "teacher-shard/teacher-shard"
PAGE_SIZE = 200


@dataclass(frozen=True, order=True)
class ShardKey:
    """Where a shard run stands among its parent's: the parent's attempt, the shard, the try."""

    parent_attempt: int
    shard_index: int
    attempt: int


def shard_idempotency_key(parent_id: str, parent_attempt: int, shard_index: int, attempt: int) -> str:
    """Return the idempotency key the parent gives a shard run (also how it is found again)."""
    return f"{parent_id}:{parent_attempt}:{shard_index}:{attempt}"


def parse_shard_key(idempotency_key: str | None, parent_id: str) -> ShardKey | None:
    """Read a shard run's idempotency key back; None when it is not one of this parent's."""
    parts = (idempotency_key or "").split(":")
    if len(parts) != 4 or parts[0] != parent_id or not all(p.isdigit() for p in parts[1:]):
        return None
    return ShardKey(int(parts[1]), int(parts[2]), int(parts[3]))


def latest_tries(keys: dict[str, ShardKey]) -> list[str]:
    """Return the run ids of the latest parent attempt's latest try of each shard, by shard index.

    A shard not started in the latest attempt had nothing left to ask then: it has no failure now.
    """
    if not keys:
        return []
    attempt = max(key.parent_attempt for key in keys.values())
    latest: dict[int, tuple[ShardKey, str]] = {}
    for run_id, key in keys.items():
        if key.parent_attempt == attempt and (key.shard_index not in latest or key > latest[key.shard_index][0]):
            latest[key.shard_index] = (key, run_id)
    return [run_id for _, (_, run_id) in sorted(latest.items())]


async def shard_runs_of(client: PrefectClient, parent_id: UUID) -> list[FlowRun]:
    """Return every teacher-shard flow run linked under ``parent_id`` (all attempts, all tries)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    runs: list[FlowRun] = []
    while True:
        page = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[SHARD_FLOW])),
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])),
            limit=PAGE_SIZE,
            offset=len(runs),
        )
        runs += page
        if len(page) < PAGE_SIZE:
            return runs


async def current_shard_runs(client: PrefectClient, parent_id: UUID) -> list[FlowRun]:
    """Return the shard runs whose failures are the parent's now: the latest try of each shard."""
    runs = {str(run.id): run for run in await shard_runs_of(client, parent_id)}
    keys = {run_id: key for run_id, run in runs.items() if (key := parse_shard_key(run.idempotency_key, str(parent_id)))}
    return [runs[run_id] for run_id in latest_tries(keys)]


async def start_shard_run(parameters: dict[str, object], name: str, idempotency_key: str) -> str:
    """Start one teacher-shard run as a linked subflow run of the calling flow run; return its id.

    A server restart may lose the answer to a create: the same idempotency key then returns the same
    run, not a twin.
    """
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    from vqa_distill.errors import FatalRunError

    try:
        started = await arun_deployment(
            SHARD_DEPLOYMENT, parameters=parameters, timeout=0, as_subflow=True, flow_run_name=name,
            idempotency_key=idempotency_key,
        )  # fmt: skip
    except ObjectNotFound as exc:
        raise FatalRunError(
            f"shards > 1 needs the '{SHARD_DEPLOYMENT}' deployment and a cpu-pool worker: run `vqa-distill deploy` "
            "(or `vqa-distill stack up`), or set shards to 1"
        ) from exc
    return str(started.id)


async def read_run_state(client: PrefectClient, flow_run_id: str) -> tuple[str | None, str | None]:
    """Return a flow run's state type (``COMPLETED``...) and message; (None, None) before it has one."""
    read = await client.read_flow_run(UUID(flow_run_id))
    return (read.state.type.value, read.state.message) if read.state else (None, None)
