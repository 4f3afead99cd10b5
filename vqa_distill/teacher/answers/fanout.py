"""Ask every planned request through one callable, a bounded number at a time, and sort the outcomes.

The flow passes the Prefect task as ``ask``; this module knows nothing of Prefect, so the bookkeeping
(what was paid now, what another run had answered, what failed) is tested with plain coroutines.
Fan-out is ``asyncio.gather`` under a semaphore: each request is one task run on the flow's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vqa_distill import progress
from vqa_distill.teacher.answers.outcomes import failure_record
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
    """Await ``ask`` for every request, at most ``concurrency`` in flight; report progress as they finish."""
    in_flight = asyncio.Semaphore(concurrency)
    outcome = FanOutOutcome()
    total = len(requests)
    done = 0

    async def ask_one(request: TeacherRequest) -> None:
        nonlocal done
        async with in_flight:
            try:
                answered = await ask(request)
            except Exception as exc:  # the task recorded why in the ledger; the UI shows it too
                outcome.failures.append(failure_of(request, ledger, exc, flow_run_id))
            else:
                file_answer(TeacherRecord(**answered), request, flow_run_id, outcome, ledger)
        done += 1
        progress.report(done, total)

    progress.report(0, total)
    await asyncio.gather(*(ask_one(request) for request in requests))
    return outcome


def file_answer(
    record: TeacherRecord, request: TeacherRequest, flow_run_id: str | None, outcome: FanOutOutcome, ledger: Ledger
) -> None:
    """File an answer as fresh (paid by this run) or cached (another run's, copied into this ledger).

    The record names the flow run that paid for it, so a cache hit is told apart without reading the
    task run's state back from the API.
    """
    if record.flow_run_id == flow_run_id:
        outcome.fresh.append(record)
        return
    # Answered by an earlier run, maybe into another folder: no call was made; keep it here too.
    record.image_path, record.rel_path = request.image_path, request.rel_path
    ledger.record(record)
    outcome.cached += 1


def failure_of(
    request: TeacherRequest, ledger: Ledger, error: BaseException, flow_run_id: str | None, kind: str = KIND_ANSWER
) -> TeacherRecord:
    """Return the failure the task recorded, or one made from the error when the task died first."""
    failed = ledger.get(request.key)
    if failed is not None and failed.status == STATUS_FAILED:
        return failed
    record = failure_record(request, error, attempts=1, flow_run_id=flow_run_id, started_at=utc_now())
    record.kind = kind
    return record
