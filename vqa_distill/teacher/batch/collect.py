"""Collect a run folder's finished batches into its ledger, then rebuild its dataset and summary.

Under the folder's lock: interrupted submits are settled, every batch not collected yet is read back
from the endpoint; a finished one (completed, failed, expired, cancelled) has its output and error
lines recorded as online mode records them. A line whose key is already answered (online, or by
another batch) is recorded once and counted as a duplicate; a line already collected from this very
batch (a collect killed half-way) is skipped. Nothing waits for a batch: what is not finished is
left for the next collect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI

from vqa_distill.dataset.build import DatasetReport
from vqa_distill.errors import ConfigError
from vqa_distill.teacher.batch.book import (
    FINAL_STATUSES,
    BatchBook,
    BatchRow,
    run_folder_lock,
)
from vqa_distill.teacher.batch.remote import (
    batch_counts,
    batch_errors,
    read_file_lines,
    retrieve_batch,
)
from vqa_distill.teacher.batch.results import (
    RETURNED_CLASSES,
    LineResult,
    not_run_record,
    parse_result_line,
    result_record,
)
from vqa_distill.teacher.batch.submit import Recovery, recover_interrupted
from vqa_distill.teacher.ledger.records import (
    DONE_STATUSES,
    STATUS_FAILED,
    STATUS_SUBMITTED,
    STATUS_UNUSABLE,
    Ledger,
    TeacherRecord,
    ledger_exists,
)
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.batch_summary import BatchSummary, batch_costs
from vqa_distill.teacher.run.finish import Publish, finish_run
from vqa_distill.teacher.run.plan import RunPlan, plan_run
from vqa_distill.teacher.run.summary import RunSummary, summarize
from vqa_distill.teacher.run_log import run_logger

ClientFor = Callable[[str | None, str | None], Awaitable[AsyncOpenAI]]  # (base_url, api_key_block) -> client


@dataclass
class CollectOutcome:
    """The records this collect wrote, and the batches it finished or left open."""

    fresh: list[TeacherRecord] = field(default_factory=list)  # answers, usable or not
    failures: list[TeacherRecord] = field(default_factory=list)  # line errors and lines not run
    not_run: int = 0
    duplicates: int = 0
    lines: int = 0
    collected: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)


def has_batches(out: str | Path) -> bool:
    """Tell whether a run folder has a ledger with batches not collected or claims not settled (cheap)."""
    if not ledger_exists(out):
        return False
    with Ledger(out) as ledger, BatchBook(ledger) as book:
        return bool(book.uncollected() or book.pending())


async def collect_run(
    out: str | Path, client_for: ClientFor, *, flow_run_id: str | None, publish: Publish
) -> RunSummary | None:
    """Collect the folder's finished batches, then end it as every run ends (``finish_run``); None when
    no batch finished now."""
    with Ledger(out) as ledger, BatchBook(ledger) as book:
        async with run_folder_lock(out, url=ledger.store.url):
            recovery = Recovery()
            for base_url, block in {(row.base_url, row.api_key_block) for row in book.pending()}:
                settled = await recover_interrupted(book, await client_for(base_url, block), base_url)
                recovery.adopted += settled.adopted
                recovery.released += settled.released
            stored = book.params()
            params = TeacherParams.model_validate(stored) if stored else None
            plan = _plan_of(params, ledger)
            outcome = CollectOutcome()
            for row in book.uncollected():
                await collect_batch(
                    row, ledger, book, await client_for(row.base_url, row.api_key_block), outcome
                )
        if not outcome.collected and not recovery.adopted and not recovery.released:
            return None
        if outcome.duplicates:
            run_logger().warning(
                "%d line(s) were answered both online (or by another batch) and in a batch: recorded once",
                outcome.duplicates,
            )
        in_flight = len(ledger.in_flight_keys())
        model = params.model if params else (outcome.fresh[0].model if outcome.fresh else "unknown")

        def summarize_with(dataset: DatasetReport) -> RunSummary:
            return collect_summary(out, plan, model, dataset, outcome, recovery, in_flight, flow_run_id)

        return await finish_run(ledger, out, summarize_with, publish, plan=plan, params=params)


def collect_summary(
    out: str | Path, plan: RunPlan | None, model: str, dataset: DatasetReport, outcome: CollectOutcome,
    recovery: Recovery, in_flight: int, flow_run_id: str | None,
) -> RunSummary:  # fmt: skip
    """Summarize a collect: the answers and failures it recorded, at the batch price, and what is in flight."""
    summary = summarize(
        plan or _empty_plan(),
        out=str(Path(out).resolve()),
        model=model,
        fresh=outcome.fresh,
        cached=0,
        failures=outcome.failures,
        dataset=dataset,
        flow_run_id=flow_run_id,
    )
    batch_cost, online_cost, saving = batch_costs(model, summary.prompt_tokens, summary.completion_tokens)
    summary.estimated_cost_usd = batch_cost
    summary.batch = BatchSummary(
        mode="collect",
        batch_ids=outcome.collected,
        lines=outcome.lines,
        adopted=recovery.adopted,
        released=recovery.released,
        in_flight=in_flight,
        open_batches=len(outcome.open),
        not_run=outcome.not_run,
        duplicates=outcome.duplicates,
        online_cost_usd=online_cost,
        saving_usd=saving,
    )
    return summary


async def collect_batch(
    row: BatchRow, ledger: Ledger, book: BatchBook, client: AsyncOpenAI, outcome: CollectOutcome
) -> None:
    """Read one batch's state; when it is finished, record every line and mark it collected."""
    assert row.batch_id is not None
    batch = await retrieve_batch(client, row.batch_id)
    book.update(
        row.batch_id,
        status=batch.status,
        counts=batch_counts(batch),
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        errors=batch_errors(batch),
    )
    if batch.status not in FINAL_STATUSES:
        outcome.open.append(row.batch_id)
        return
    carried = {record.key: record for record in ledger.in_batch(row.batch_id)}
    counts = {"answered": 0, "unusable": 0, "failed": 0, "not_run": 0, "duplicates": 0}
    for file_id in (batch.output_file_id, batch.error_file_id):
        for text in await read_file_lines(client, file_id) if file_id else []:
            try:
                result = parse_result_line(text)
            except ValueError:
                run_logger().warning("batch %s: a result line that is not one was skipped", row.batch_id)
                continue
            outcome.lines += 1
            _record_line(result, carried.pop(result.key, None), row.batch_id, ledger, outcome, counts)
    for left in carried.values():  # never run: expired, cancelled, refused, or missing
        if left.status == STATUS_SUBMITTED:
            _file(
                not_run_record(left, row.batch_id, batch.status, batch_errors(batch)), ledger, outcome, counts
            )
    book.mark_collected(row.batch_id, {**batch_counts(batch), **counts})
    outcome.collected.append(row.batch_id)


def _record_line(
    result: LineResult,
    carried: TeacherRecord | None,
    batch_id: str,
    ledger: Ledger,
    outcome: CollectOutcome,
    counts: dict[str, int],
) -> None:
    """Record one result line, unless its key was answered elsewhere (duplicate) or already collected."""
    if carried is None or carried.status != STATUS_SUBMITTED:
        known = carried or ledger.get(result.key)
        if known is None or known.batch_id == batch_id:  # unknown key, or collected before a crash
            return
        if known.status in DONE_STATUSES:
            if result.answer is not None:
                counts["duplicates"] += 1
                outcome.duplicates += 1
            return
        if result.answer is None or known.status == STATUS_SUBMITTED:  # carried by another batch
            return
        carried = known  # given back, then failed elsewhere: an answer still wins
    if result.not_run is not None:
        _file(not_run_record(carried, batch_id, result.not_run), ledger, outcome, counts)
        return
    _file(result_record(carried, result, batch_id), ledger, outcome, counts)


def _file(record: TeacherRecord, ledger: Ledger, outcome: CollectOutcome, counts: dict[str, int]) -> None:
    """Store a record and count it as an answer, an unusable answer, a failure, or a line not run."""
    if not ledger.record(record):  # answered another way meanwhile: the ledger keeps that answer
        if record.status != STATUS_FAILED:
            counts["duplicates"] += 1
            outcome.duplicates += 1
        return
    if record.status == STATUS_FAILED:
        outcome.failures.append(record)
        not_run = record.error_class in RETURNED_CLASSES
        counts["not_run" if not_run else "failed"] += 1
        outcome.not_run += not_run
        return
    outcome.fresh.append(record)
    counts["unusable" if record.status == STATUS_UNUSABLE else "answered"] += 1


def _plan_of(params: TeacherParams | None, ledger: Ledger) -> RunPlan | None:
    """Return the plan of the latest submission's parameters (the dataset's keys), or None when unknown."""
    if params is None:
        return None
    try:
        return plan_run(params, ledger)
    except ConfigError as exc:  # the images folder is gone or unreadable here
        run_logger().warning(
            "cannot list the run's images (%s): the dataset holds every answer of the ledger", exc
        )
        return None


def _empty_plan() -> RunPlan:
    return RunPlan(images=[], skipped=[], duplicate_files=[], requests=[], to_ask=[], already_answered=0)
