"""The ``teacher-shard`` flow: ask one part of a sharded teacher run, on whichever cpu-pool worker takes it.

The parent ``generate`` run starts one run of the ``teacher-shard`` deployment per part, as linked
subflow runs, and waits for them. A shard plans the whole folder as ``generate`` does (answered
requests cost nothing), keeps the images whose hash falls in its part, and runs the same per-image
fan-out. It writes answers and failures to the ledger and builds nothing: the parent reads the ledger
back and builds the dataset once. Run again after a crash, it asks only what the ledger still lacks.
Its own progress and cost/ETA artifacts move while it runs, as the parent's do.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.generate import ask_planned
from tasks.report import teacher_live
from vqa_distill.errors import ConfigError
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.ledger.identity import LedgerMark, check_shared_ledger
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.live import live_progress
from vqa_distill.teacher.run.plan import plan_run
from vqa_distill.teacher.shards.lock import shard_lock
from vqa_distill.teacher.shards.split import ShardSummary, shard_plan


@flow(name="teacher-shard", log_prints=False, validate_parameters=True)
@fatal_errors_fail_the_run
async def teacher_shard(
    params: TeacherParams, shard_index: int = 0, only_keys: list[str] | None = None, ledger_mark: LedgerMark | None = None
) -> ShardSummary:
    """Ask the teacher about this shard's images not answered yet (the parent builds the dataset).

    Args:
        params: The parent run's teacher parameters; ``shards`` says into how many parts the images split.
        shard_index: Which part (0-based) this run asks: images whose sha256 falls in it.
        only_keys: Re-ask only these request keys (set by retry-failed); empty: every unanswered request.
        ledger_mark: The parent's mark in its ledger (set by the parent): the shard refuses, before asking
            anything, a ledger that does not hold it.
    """
    if not 0 <= shard_index < params.shards:
        raise ConfigError(f"shard_index {shard_index} is outside 0..{params.shards - 1}")
    async with live_progress(teacher_live(params, shard=True)):
        with Ledger(params.out) as ledger:
            location = check_shared_ledger(ledger, ledger_mark) if ledger_mark else ledger.store.location
            # One run of this shard at a time: a re-run waits for an original that still lives, then refuses.
            async with shard_lock(ledger, flow_run.parent_flow_run_id or flow_run.id, shard_index):
                whole = plan_run(params, ledger, set(only_keys) if only_keys is not None else None)
                plan = shard_plan(whole, params.shards, shard_index)
                get_run_logger().info("shard %d of %d: %d request(s) to ask", shard_index + 1, params.shards,
                                      plan.pending)  # fmt: skip
                outcome = await ask_planned(plan, params, ledger) if plan.pending else FanOutOutcome()
    summary = ShardSummary(
        shard_index=shard_index, shards=params.shards, flow_run_id=flow_run.id, answered_now=len(outcome.fresh),
        cached=outcome.cached, failed=len(outcome.failures), discovered=outcome.discovered, ledger_location=location,
    )  # fmt: skip
    get_run_logger().info("shard %d of %d: %s", shard_index + 1, params.shards, summary.describe())
    if summary.failed:
        message = f"{summary.failed} of {outcome.asked} requests of shard {shard_index + 1} failed"
        return Failed(message=message, data=summary)  # type: ignore[return-value]
    return summary
