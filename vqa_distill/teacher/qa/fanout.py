"""Questions mode, fanned out: per image x prompt, ask for its questions, then answer (and judge) each one.

One coroutine per unit awaits its question-set task run, then gathers one answer task run per question,
each followed by its judgement: an image's answers start as soon as its questions are in, with no
barrier between the stages. Every task run of every stage waits for the same semaphore, so
``concurrency`` bounds the whole run. Like ``fanout``, this module knows nothing of Prefect: the flow
passes the tasks as ``Stages``, tests pass plain coroutines. The progress tally counts units as its
items and every request's outcome apart; a unit's cost (all its paid requests) projects the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vqa_distill import progress
from vqa_distill.teacher.answers.fanout import FanOutOutcome, count_answer, failure_of, file_answer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_ANSWER, KIND_JUDGE, KIND_QUESTIONS, Ledger, TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.plan import QAItem, QAPlan, UnitState, is_done, read_items, read_judgement
from vqa_distill.teacher.qa.questions import QAUnit

AskQuestions = Callable[[TeacherRequest], Awaitable[dict[str, Any]]]
AskLabelled = Callable[[TeacherRequest, str], Awaitable[dict[str, Any]]]  # (request, "<rel path> #k")
Spent = list[float | None]  # what one unit's paid requests cost, in USD (None: no known price)


@dataclass(frozen=True)
class Stages:
    """The calls of questions mode: write the questions, answer one, judge one (None: no judge)."""

    ask_questions: AskQuestions
    ask: AskLabelled
    judge: AskLabelled | None = None


async def ask_in_stages(
    plan: QAPlan,
    stages: Stages,
    params: TeacherParams,
    *,
    concurrency: int,
    flow_run_id: str | None,
    ledger: Ledger,
) -> FanOutOutcome:
    """Run every unit with work left, at most ``concurrency`` task runs in flight; count units as they finish."""
    in_flight = asyncio.Semaphore(concurrency)
    outcome = FanOutOutcome()
    known = {request.key for request in plan.requests}
    tally = progress.begin(len(plan.jobs))

    def met(request: TeacherRequest) -> bool:
        """Count a request first met during the run; return whether it was unknown."""
        if request.key in known:
            return False
        known.add(request.key)
        outcome.discovered += 1
        return True

    def cached(request: TeacherRequest) -> None:
        """Count a request answered already (e.g. the same question under another prompt) once."""
        if met(request):
            outcome.cached += 1
            tally.record("cached")

    async def run(
        request: TeacherRequest, kind: str, start: Callable[[], Awaitable[dict[str, Any]]], spent: Spent
    ) -> TeacherRecord | None:
        met(request)
        async with in_flight:
            try:
                answered = await start()
            except Exception as exc:  # the task recorded why in the ledger; the UI shows it too
                outcome.failures.append(await failure_of(request, ledger, exc, flow_run_id, kind))
                tally.record("failed")
                return None
        record = TeacherRecord(**answered)
        fresh = await file_answer(record, request, flow_run_id, outcome, ledger)
        cost = count_answer(tally, record, fresh=fresh)
        if fresh:
            spent.append(cost)
        return record

    async def answer_then_judge(unit: QAUnit, item: QAItem, spent: Spent) -> None:
        if is_done(item.answer):
            cached(item.request)
        else:
            item.answer = await run(item.request, KIND_ANSWER, lambda: stages.ask(item.request, item.label), spent)
        if stages.judge is None:
            return
        await asyncio.to_thread(read_judgement, item, unit, params, ledger)  # a database read: off the loop
        judge, request = stages.judge, item.judge_request
        if request is None:
            return
        if is_done(item.judgement):
            cached(request)
            return
        item.judgement = await run(request, KIND_JUDGE, lambda: judge(request, item.label), spent)

    async def one_unit(state: UnitState) -> None:
        spent: Spent = []
        if not is_done(state.questions):
            request = state.question_request
            state.questions = await run(request, KIND_QUESTIONS, lambda: stages.ask_questions(request), spent)
            questions = state.questions
            state.items = await asyncio.to_thread(read_items, state.unit, questions, params, ledger) if questions else []
        await asyncio.gather(
            *(answer_then_judge(state.unit, item, spent) for item in state.items if item.repeats is None)
        )
        unknown = any(cost is None for cost in spent)
        tally.advance(paid=bool(spent), cost_usd=None if unknown else sum(cost or 0.0 for cost in spent))
        progress.report(tally)

    progress.report(tally)
    await asyncio.gather(*(one_unit(state) for state in plan.jobs))
    return outcome
