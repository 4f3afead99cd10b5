"""The judge's calls through the Batch API: half the price, for an evaluation that may wait.

The calls an evaluation still needs are submitted as batches in its report folder (the same
book, claim and recovery as a batch-mode teacher run, so a kill never submits a call twice); then
it polls until every batch is finished or ``wait_s`` has passed, collecting each finished batch
into the ledger. A batch still open then is collected by the next evaluation of the same rows,
which submits nothing that is in flight: rerunning the evaluation later is how one finishes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from openai import AsyncOpenAI

from vqa_distill.teacher.batch.book import BatchBook
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.collect import CollectOutcome, collect_batch
from vqa_distill.teacher.batch.submit import submit_run
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams

POLL_S = 5.0


async def judge_in_batches(
    requests: Sequence[TeacherRequest],
    judge: TeacherParams,
    ledger: Ledger,
    *,
    flow_run_id: str | None,
    wait_s: float,
    poll_s: float = POLL_S,
) -> tuple[int, int]:
    """Collect open batches, submit what is neither answered nor in flight, wait; returns (submitted, still open)."""
    async with BatchClients(judge.timeout) as clients:
        client = await clients.get(judge.base_url, judge.api_key_block)
        await collect_open(ledger, client)
        done, flying = ledger.done_keys(), ledger.in_flight_keys()
        todo = [r for r in requests if r.key not in done and r.key not in flying]
        submitted = 0
        if todo:
            await check_endpoint(client, judge.model)  # a wrong key stops here, before anything is uploaded
            outcome = await submit_run(judge, ledger, client, flow_run_id=flow_run_id, requests=todo)
            submitted = outcome.lines
        deadline = time.monotonic() + wait_s
        while True:
            still_open = await collect_open(ledger, client)
            if not still_open or time.monotonic() >= deadline:
                return submitted, still_open
            await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


async def collect_open(ledger: Ledger, client: AsyncOpenAI) -> int:
    """Collect every finished batch of the folder into the ledger; returns how many are still open."""
    outcome = CollectOutcome()
    with BatchBook(ledger) as book:
        for row in book.uncollected():
            if row.batch_id is not None:
                await collect_batch(row, ledger, book, client, outcome)
    return len(outcome.open)
