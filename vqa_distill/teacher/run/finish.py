"""How every teacher run ends: ledger exported, dataset rebuilt, summary written and published, state chosen.

``generate``, a Batch API submit and a collect end the same way. The flow passes the publishing task
(the Prefect artifacts) as ``publish`` and says how to summarize once the dataset is known, so this
module knows nothing of the task layer and is tested with plain coroutines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prefect.states import Failed

from vqa_distill.dataset.build import DatasetReport, build_dataset
from vqa_distill.dataset.qa_build import build_run_dataset
from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.plan import RunPlan
from vqa_distill.teacher.run.summary import RunSummary, summarize, write_summary
from vqa_distill.teacher.run_log import run_logger

Publish = Callable[[RunSummary], Awaitable[None]]  # the run's artifacts (the flow passes its task)
SummarizeWith = Callable[[DatasetReport], RunSummary]  # the run's summary, once its dataset is built


def rebuild_dataset(ledger: Ledger, out: str | Path, plan: RunPlan | None, params: TeacherParams | None) -> DatasetReport:
    """Rebuild the folder's dataset: the run's own (gates, questions) when its plan is known, else every answer."""
    if plan is not None and params is not None:
        return build_run_dataset(ledger, plan, params)
    return build_dataset(ledger, out, val_ratio=params.val_ratio if params else 0.0)


async def finish_run(
    ledger: Ledger, out: str | Path, summarize_with: SummarizeWith, publish: Publish, *,
    plan: RunPlan | None, params: TeacherParams | None,
) -> RunSummary:  # fmt: skip
    """Flush any spooled answers, export the ledger, rebuild the dataset, write ``summary.json``, publish."""
    ledger.flush_spool()  # answers kept on disk while the database was away belong in this run's dataset
    ledger.export()
    summary = summarize_with(rebuild_dataset(ledger, out, plan, params))
    write_summary(out, summary)
    await publish(summary)
    return summary


def fanout_summary(plan: RunPlan, params: TeacherParams, outcome: FanOutOutcome, flow_run_id: str | None) -> SummarizeWith:
    """Say how an online run (one process, or its shards) is summarized once its dataset is built."""
    return lambda dataset: summarize(
        plan, out=str(Path(params.out).resolve()), model=params.model, fresh=outcome.fresh, cached=outcome.cached,
        failures=outcome.failures, dataset=dataset, flow_run_id=flow_run_id, discovered=outcome.discovered,
    )  # fmt: skip


def run_end(summary: RunSummary, asked: int, unfinished: str = "") -> Any:
    """Return the summary, or a Failed state carrying it when a request failed or a shard did not finish.

    Failed (not Completed) is what lets the UI's Retry button re-ask just the failures.
    """
    dataset = summary.dataset
    run_logger().info("answered now %d, failed %d, train rows %d", summary.answered_now, summary.failed,
                      dataset.train_rows if dataset else 0)  # fmt: skip
    if not summary.failed and not unfinished:
        return summary
    failed = f"{summary.failed} of {asked} requests failed (see failed.jsonl in {summary.out})" if summary.failed else ""
    return Failed(message="; ".join(part for part in (failed, unfinished) if part), data=summary)
