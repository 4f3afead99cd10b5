"""Ask every planned request through one callable, a bounded number at a time, and sort the outcomes.

The flow passes the Prefect task as ``ask``; this module knows nothing of Prefect, so the bookkeeping
(what was paid now, what another run had answered, what failed) is tested with plain coroutines.
Fan-out is ``asyncio.gather`` under a semaphore: each request is one task run on the flow's loop.
Each outcome is counted in the run's progress tally (``vqa_distill.progress``) with what it cost;
the live reporter and the CLI's bar read that tally, so nothing here is sent per image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vqa_distill import progress
from vqa_distill.errors import FatalRunError, LedgerUnavailable
from vqa_distill.teacher.answers.outcomes import failure_record
from vqa_distill.teacher.endpoint.pricing import estimate_cost
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_ANSWER, STATUS_FAILED, Ledger, TeacherRecord, utc_now

AskOne = Callable[[TeacherRequest], Awaitable[dict[str, Any]]]


@dataclass
class FanOutOutcome:
    """What the fan-out produced: fresh records (paid by this run), cache hits, and failed records.

    ``discovered`` counts requests that were not known when the run was planned (in questions mode,
    the answers to questions written during the run, and their judgements).
    """

    fresh: list[TeacherRecord] = field(default_factory=list)
    cached: int = 0
    failures: list[TeacherRecord] = field(default_factory=list)
    discovered: int = 0

    @property
    def asked(self) -> int:
        """Requests this run asked for (paid now, found in the cache, or failed)."""
        return len(self.fresh) + self.cached + len(self.failures)


async def ask_all(
    requests: list[TeacherRequest], ask: AskOne, *, concurrency: int, flow_run_id: str | None, ledger: Ledger
) -> FanOutOutcome:
    """Await ``ask`` for every request, at most ``concurrency`` in flight; count each in the run's tally.

    ``concurrency`` is the bound; the requests in flight at the endpoint are held by its gate's
    concurrency limit (``ratelimit/concurrency.py``), fixed or ``auto``, inside ``ask``. A FatalRunError
    (a spent quota) stops the fan-out rather than being recorded against every remaining request.
    """
    in_flight = asyncio.Semaphore(concurrency)
    outcome = FanOutOutcome()
    tally = progress.begin(len(requests))

    stopped: list[FatalRunError] = []

    async def ask_one(request: TeacherRequest) -> None:
        async with in_flight:
            if stopped:
                return  # the run stops: asking would only fail again
            try:
                answered = await ask(request)
            except FatalRunError as exc:
                stopped.append(exc)  # a spent quota or a refused key: no other request can succeed
                raise
            except Exception as exc:  # the task recorded why in the ledger; the UI shows it too
                outcome.failures.append(await failure_of(request, ledger, exc, flow_run_id))
                tally.record("failed")
                tally.advance()
            else:
                record = TeacherRecord(**answered)
                fresh = await file_answer(record, request, flow_run_id, outcome, ledger)
                tally.advance(paid=fresh, cost_usd=count_answer(tally, record, fresh=fresh))
        progress.report(tally)

    progress.report(tally)
    await asyncio.gather(*(ask_one(request) for request in requests))
    return outcome


def count_answer(tally: progress.Tally, record: TeacherRecord, *, fresh: bool) -> float | None:
    """Count an answer in the tally: paid now (its ``usage`` at the model's list price) or cached (free).

    Return what it cost in USD: 0.0 for a cache hit, None when the model has no known price.
    """
    if not fresh:
        tally.record("cached")
        return 0.0
    prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
    cost = estimate_cost(record.model, prompt, completion)
    tally.record("answered", prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
    return cost


async def file_answer(
    record: TeacherRecord, request: TeacherRequest, flow_run_id: str | None, outcome: FanOutOutcome, ledger: Ledger
) -> bool:
    """File an answer as fresh (paid by this run) or cached (another run's, copied into this ledger).

    The record names the flow run that paid for it, so a cache hit is told apart without reading the
    task run's state back from the API. Return whether it was fresh.
    """
    if record.flow_run_id == flow_run_id:
        outcome.fresh.append(record)
        return True
    # Answered by an earlier run, maybe into another folder: no call was made; keep it here too.
    record.image_path, record.rel_path = request.image_path, request.rel_path
    await ledger.record_async(record)  # off the loop; spooled if the database is away
    outcome.cached += 1
    return False


async def failure_of(
    request: TeacherRequest, ledger: Ledger, error: BaseException, flow_run_id: str | None, kind: str = KIND_ANSWER
) -> TeacherRecord:
    """Return the failure the task recorded, or one made from the error when the task died first (or the
    ledger cannot be read now: a database outage must not end the other requests' fan-out)."""
    try:
        failed = await ledger.get_async(request.key)
    except LedgerUnavailable:
        failed = None
    if failed is not None and failed.status == STATUS_FAILED:
        return failed
    record = failure_record(request, error, attempts=1, flow_run_id=flow_run_id, started_at=utc_now())
    record.kind = kind
    return record
