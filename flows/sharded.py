"""Ask a planned teacher run in shards: one ``teacher-shard`` run per part with work, waited for, crashed ones again.

The parent ``generate`` run starts the shard runs through the ``teacher-shard`` deployment (linked
subflow runs: the UI lists them under the parent, and any cpu-pool worker takes them), then polls
their states. A shard run that crashed (its process or its machine died) is started again, up to
``params.shard_attempts`` runs; it pays only for what the ledger still lacks. The polling outlasts a
Prefect server restart (``ApiPatience``). When every shard is final, the ledger says what they did.
The decisions are in ``vqa_distill/teacher/shards/split.py``; this module only talks to the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import PrefectClient, get_client
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.runtime import flow_run

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.prefect_runs.shard_runs import shard_idempotency_key
from vqa_distill.teacher.run.plan import RunPlan
from vqa_distill.teacher.shards.split import (
    SHARD_DEPLOYMENT,
    SHARD_POLL_S,
    ApiPatience,
    Next,
    ShardRun,
    gather_outcome,
    is_transient_api_error,
    keys_of_shard,
    next_step,
    pending_by_shard,
    shard_run_name,
)

T = TypeVar("T")
UNCLAIMED_WARNING_S = 60.0  # shard runs nobody took by then: say why the parent seems stuck, once


async def patiently(call: Callable[[], Awaitable[T]], patience: ApiPatience, what: str) -> T:
    """Await ``call`` until it succeeds, retrying while the Prefect API is unreachable or answers 5xx."""
    logger = get_run_logger()
    while True:
        try:
            result = await call()
        except (httpx.TransportError, PrefectHTTPStatusError) as exc:
            status = exc.response.status_code if isinstance(exc, PrefectHTTPStatusError) else None
            if not is_transient_api_error(status):
                raise
            if not patience.failed(time.monotonic()):
                raise FatalRunError(
                    f"the Prefect API did not answer for {patience.patience_s:.0f} s while {what}"
                ) from exc
            logger.warning("Prefect API unavailable while %s (%s); trying again", what, type(exc).__name__)
            await asyncio.sleep(SHARD_POLL_S)
        else:
            patience.ok()
            return result


async def start_shard(run: ShardRun, params: TeacherParams, plan: RunPlan, only_keys: list[str] | None) -> None:
    """Start the next run of one shard through the deployment (idempotent per parent attempt and shard try)."""
    parameters: dict[str, object] = {"params": params.model_dump(mode="json"), "shard_index": run.index}
    keys = keys_of_shard(only_keys, plan.requests, params.shards, run.index)
    if keys is not None:
        parameters["only_keys"] = keys
    attempt = run.attempt + 1
    try:
        started = await arun_deployment(
            SHARD_DEPLOYMENT, parameters=parameters, timeout=0, as_subflow=True,
            flow_run_name=shard_run_name(flow_run.name or "generate", run.index, params.shards, attempt),
            # A server restart may lose the answer to a create: the same key returns the same run, not a twin.
            idempotency_key=shard_idempotency_key(flow_run.id, flow_run.run_count, run.index, attempt),
        )  # fmt: skip
    except ObjectNotFound as exc:
        raise FatalRunError(
            f"shards > 1 needs the '{SHARD_DEPLOYMENT}' deployment and a cpu-pool worker: run `vqa-distill deploy` "
            "(or `vqa-distill stack up`), or set shards to 1"
        ) from exc
    run.flow_run_ids.append(str(started.id))
    run.state, run.message, run.outcome = None, None, Next.WAIT


async def wait_for_shards(client: PrefectClient, runs: list[ShardRun], params: TeacherParams, plan: RunPlan,
                          only_keys: list[str] | None, patience: ApiPatience) -> None:  # fmt: skip
    """Poll the shard runs until each is done or given up; start crashed ones again."""
    logger = get_run_logger()
    warn_at: float | None = time.monotonic() + UNCLAIMED_WARNING_S
    while waiting := [run for run in runs if run.outcome is Next.WAIT]:
        await asyncio.sleep(SHARD_POLL_S)
        if warn_at is not None and time.monotonic() > warn_at and any(run.state == "SCHEDULED" for run in waiting):
            logger.warning("shard runs still scheduled after %.0f s: is a cpu-pool worker running?", UNCLAIMED_WARNING_S)
            warn_at = None
        for run in waiting:
            read = await patiently(lambda: client.read_flow_run(UUID(run.current)), patience, "reading shard states")  # noqa: B023
            state_type = read.state.type.value if read.state else None
            run.state, run.message = state_type, read.state.message if read.state else None
            run.outcome = next_step(state_type, run.attempt, params.shard_attempts)
            if run.outcome is Next.RERUN:
                logger.warning("shard %d crashed (%s): starting it again, try %d of %d", run.index + 1,
                               run.message or "no message", run.attempt + 1, params.shard_attempts)  # fmt: skip
                await patiently(lambda: start_shard(run, params, plan, only_keys), patience, "restarting a shard")  # noqa: B023
            elif run.outcome is not Next.WAIT:
                logger.info("shard %d %s: %s", run.index + 1, (state_type or "unknown").lower(), run.message or "")


async def ask_in_shards(
    plan: RunPlan, params: TeacherParams, ledger: Ledger, only_keys: list[str] | None
) -> tuple[FanOutOutcome, list[ShardRun]]:
    """Run the plan's pending requests as shard runs; return what they did (from the ledger) and the shards."""
    logger = get_run_logger()
    pending = pending_by_shard(plan, params.shards)
    if not pending:
        return FanOutOutcome(), []
    runs = [ShardRun(index) for index in pending]
    patience = ApiPatience()
    for run in runs:
        await patiently(lambda: start_shard(run, params, plan, only_keys), patience, "starting shards")  # noqa: B023
    logger.info("%d shard run(s) started: %s", len(runs),
                ", ".join(f"{run.index + 1}: {pending[run.index]} to ask" for run in runs))  # fmt: skip
    async with get_client() as client:
        await wait_for_shards(client, runs, params, plan, only_keys, patience)
    return gather_outcome(plan, ledger, [run_id for run in runs for run_id in run.flow_run_ids]), runs
