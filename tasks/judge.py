"""The judge's tasks: ``judge-answer`` (a rubric score of one answer) and ``judge-pair`` (two answers compared).

One run per call, named after what it judges. Retried on transient errors only and cached by the
request's content key with persisted results, so a rerun, a retried task run or a flow run retried
from the UI pays no judge call twice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from tasks.teacher import ask_and_record, retry_only_transient, run_label, with_retries
from vqa_distill.student.judged.batched import judge_in_batches
from vqa_distill.student.judged.plan import PAIR, JudgeCall, JudgePlan
from vqa_distill.student.judged.report import JudgeCounts
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_JUDGE, Ledger, TeacherRecord
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_UNUSABLE
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import judge_record
from vqa_distill.teacher.qa.pairwise import pairwise_record
from vqa_distill.teacher.run.resources import open_resources, registered

PAID = (STATUS_ANSWERED, STATUS_UNUSABLE)  # a paid answer is never asked again, usable or not
PROGRESS_KEY = "judge-progress"
PROGRESS_EVERY_S = 5.0  # the artifact moves a few times a minute, not once per call


def judge_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image bytes, question, answer, judge model and parameters are one score."""
    request: TeacherRequest = parameters["request"]
    return f"judge-answer-{request.key}"


def judge_run_name() -> str:
    """Name each run after the question it scores: ``judge-answer[line 2/cat_001.jpg #3]``."""
    return f"judge-answer[{run_label()}]"


@task(
    name="judge-answer",
    task_run_name=judge_run_name,
    retry_condition_fn=retry_only_transient,
    cache_key_fn=judge_cache_key,
    persist_result=True,
    log_prints=False,
)
async def judge_answer(request: TeacherRequest, label: str | None = None) -> dict[str, Any]:
    """Ask the judge to score one answer about one image and record the score in the run's ledger."""
    return await ask_and_record(request, judge_record, KIND_JUDGE)


def pair_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image, question, both answers in this order, judge model and parameters."""
    request: TeacherRequest = parameters["request"]
    return f"judge-pair-{request.key}"


@task(
    name="judge-pair",
    task_run_name=lambda: f"judge-pair[{run_label()}]",
    retry_condition_fn=retry_only_transient,
    cache_key_fn=pair_cache_key,
    persist_result=True,
    log_prints=False,
)
async def judge_pair(request: TeacherRequest, label: str | None = None) -> dict[str, Any]:
    """Ask the judge which of two answers about one image is better; record the verdict in the ledger."""
    return await ask_and_record(request, pairwise_record, KIND_JUDGE)


class JudgeProgress:
    """The judge calls' share done, as a progress artifact on the evaluate run (at most every few seconds)."""

    def __init__(self, total: int):
        self.total, self.done, self.shown_at = total, 0, 0.0
        self.artifact_id: Any = None

    async def start(self) -> None:
        """Create the artifact at 0 %."""
        self.artifact_id = await acreate_progress_artifact(
            0.0, key=PROGRESS_KEY, description=f"{self.total} judge calls"
        )

    async def advance(self) -> None:
        """Count one call done; move the artifact when it was last moved a while ago."""
        self.done += 1
        if time.monotonic() - self.shown_at >= PROGRESS_EVERY_S:
            await self.finish()

    async def finish(self) -> None:
        """Show the share done now."""
        self.shown_at = time.monotonic()
        if self.artifact_id is not None:
            await aupdate_progress_artifact(self.artifact_id, 100.0 * self.done / max(1, self.total))


async def judge_all(
    plan: JudgePlan, judge: TeacherParams, ledger: Ledger, *, batch_wait_s: float = 0.0
) -> tuple[list[dict[str, Any] | None], JudgeCounts]:
    """Read what the ledger holds, ask the rest online or as batches; a call without a paid answer is None."""
    records = await paid_records(plan, ledger)
    missing = [i for i, record in enumerate(records) if record is None]
    if missing and judge.batch:
        requests = [plan.calls[i].request for i in missing]
        _, still_open = await judge_in_batches(
            requests, judge, ledger, flow_run_id=flow_run.id, wait_s=batch_wait_s
        )
        if still_open:
            get_run_logger().warning(
                "%d judge batch(es) still open: their verdicts are left out; rerun the evaluation to collect them",
                still_open,
            )
        records = await paid_records(plan, ledger)
    elif missing:
        await ask_online([plan.calls[i] for i in missing], judge, ledger)
        records = await paid_records(plan, ledger)
    failed = sum(record is None for record in records)
    counts = JudgeCounts(
        len(plan.calls), len(plan.calls) - len(missing), len(missing), failed, len(plan.free_verdicts)
    )
    return records, counts


async def file_cached(answered: dict[str, Any], ledger: Ledger) -> None:
    """Record a verdict the task's cache returned (paid by an evaluation in another folder) in this ledger.

    A cached task run does not run its body, so nothing was recorded here: without this the verdict
    would read as missing, and the next evaluation of these rows would ask for it again.
    """
    record = TeacherRecord(**answered)
    if record.status in PAID and await ledger.get_async(record.key) is None:
        await ledger.record_async(record)


async def paid_records(plan: JudgePlan, ledger: Ledger) -> list[dict[str, Any] | None]:
    """Each call's paid record (answered or unusable: never asked again), None where there is none yet."""
    known = [await ledger.get_async(call.request.key) for call in plan.calls]
    return [r.to_json() if r is not None and r.status in PAID else None for r in known]


async def ask_online(calls: list[JudgeCall], judge: TeacherParams, ledger: Ledger) -> None:
    """One judge task run per call under the judge's gate (endpoint checked once first); failures stay in the ledger."""
    resources = await open_resources(judge, ledger)
    async with registered(flow_run.id, resources):
        await check_endpoint(resources.client, judge.model)  # a wrong key or model stops here, once
        pair, rubric = with_retries(judge_pair, judge), with_retries(judge_answer, judge)
        in_flight = asyncio.Semaphore(judge.concurrency)
        shown = JudgeProgress(len(calls))
        await shown.start()

        async def ask(call: JudgeCall) -> None:
            async with in_flight:
                try:
                    answered = await (pair if call.what == PAIR else rubric)(call.request, label=call.label)
                except Exception:  # the ledger holds the failure; the verdict is left out, not guessed
                    return
                finally:
                    await shown.advance()
            await file_cached(answered, ledger)

        await asyncio.gather(*(ask(call) for call in calls))
        await shown.finish()
