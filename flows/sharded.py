"""Ask a planned teacher run in shards: one ``teacher-shard`` run per part with work, waited for, crashed ones again.

The parent ``generate`` run starts the shard runs through the ``teacher-shard`` deployment (linked
subflow runs: the UI lists them under the parent, and any cpu-pool worker takes them), then waits
for them (``teacher/shards/polling.py``: crashed shards start again, a Prefect server restart is
outlasted). When every shard is final, the ledger says what they did. Meanwhile the parent's live
artifacts read the shards' counts from the ledger (``teacher/shards/sampling.py``). This module binds the calls.
"""

from __future__ import annotations

from prefect.client.orchestration import PrefectClient, get_client
from prefect.runtime import flow_run

from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.ledger.identity import LedgerMark, mark_shared_ledger
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.prefect_runs.shard_runs import read_run_state, shard_idempotency_key, start_shard_run
from vqa_distill.teacher.run.live import LiveProgress
from vqa_distill.teacher.run.plan import RunPlan
from vqa_distill.teacher.run_log import run_logger
from vqa_distill.teacher.shards.polling import ShardPolling, ShardRun, wait_for_shards
from vqa_distill.teacher.shards.sampling import watch_shards
from vqa_distill.teacher.shards.split import gather_outcome, keys_of_shard, pending_by_shard, shard_run_name


def shard_polling(
    params: TeacherParams, plan: RunPlan, only_keys: list[str] | None, client: PrefectClient, mark: LedgerMark
) -> ShardPolling:
    """Bind a shard's next run (parameters, the parent's ledger mark, name, idempotency key per parent attempt
    and try) and a state read."""

    async def start(run: ShardRun) -> str:
        parameters: dict[str, object] = {"params": params.model_dump(mode="json"), "shard_index": run.index,
                                         "ledger_mark": mark.model_dump(mode="json")}  # fmt: skip
        keys = keys_of_shard(only_keys, plan.requests, params.shards, run.index)
        if keys is not None:
            parameters["only_keys"] = keys
        attempt = run.attempt + 1
        name = shard_run_name(flow_run.name or "generate", run.index, params.shards, attempt)
        return await start_shard_run(parameters, name, shard_idempotency_key(flow_run.id, flow_run.run_count,
                                                                             run.index, attempt))  # fmt: skip

    async def read(run_id: str) -> tuple[str | None, str | None]:
        return await read_run_state(client, run_id)

    return ShardPolling(start=start, read_state=read, max_attempts=params.shard_attempts,
                        deadline_s=params.shard_deadline_h * 3600)  # fmt: skip


async def ask_in_shards(
    plan: RunPlan, params: TeacherParams, ledger: Ledger, only_keys: list[str] | None, live: LiveProgress
) -> tuple[FanOutOutcome, list[ShardRun]]:
    """Run the plan's pending requests as shard runs; return what they did (from the ledger) and the shards."""
    pending = pending_by_shard(plan, params.shards)
    if not pending:
        return FanOutOutcome(), []
    params = params.with_absolute_paths()  # a run started from the UI with a relative folder: resolved here, once
    mark = mark_shared_ledger(ledger, flow_run.id)  # each shard proves it writes where this run reads
    runs = [ShardRun(index) for index in pending]
    watch_shards(live, ledger, runs, sum(pending.values()), params)
    async with get_client() as client:
        polling = shard_polling(params, plan, only_keys, client, mark)
        for run in runs:
            await polling.start_next(run, "starting shards")
        run_logger().info("%d shard run(s) started: %s", len(runs),
                          ", ".join(f"{run.index + 1}: {pending[run.index]} to ask" for run in runs))  # fmt: skip
        await wait_for_shards(runs, polling)
    ledger.flush_spool()  # answers a shard spooled in the shared folder while the database was away
    return gather_outcome(plan, ledger, [run_id for run in runs for run_id in run.flow_run_ids]), runs
