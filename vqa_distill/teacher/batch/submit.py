"""Submit a run's unanswered requests as Batch API batches: claim, build, upload, create, record; safe to kill anywhere.

Under the run folder's lock: interrupted submits are settled first (their batches adopted by metadata,
or their keys given back), then the plan (answered and in-flight keys left out), then the claim: every
planned key not answered or claimed since the plan was read is recorded ``submitted``, atomically, and
only the keys claimed are written into the input files (so a line is never built, uploaded and billed
for a key answered meanwhile). Then per part: upload, create the batch with metadata naming the folder
and part, and record the batch id on every key before returning. A process killed after the create
call leaves a claim that the next submit or collect adopts; it never creates that batch twice.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI
from openai.types import Batch, FileObject

from vqa_distill.dataset.build import DatasetReport
from vqa_distill.teacher.batch.book import PENDING, BatchBook, BatchRow, run_folder_lock
from vqa_distill.teacher.batch.files import PREPARE_AHEAD, BatchLimits, BuiltParts, PartFile, build_parts
from vqa_distill.teacher.batch.remote import (
    batch_metadata,
    create_batch,
    delete_orphan_upload,
    epoch_of,
    find_batch,
    upload_part,
)
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.batch_summary import BatchSummary, mean_kib
from vqa_distill.teacher.run.plan import RunPlan, plan_run
from vqa_distill.teacher.run.resources import IMAGE_CACHE_SLACK, PreparedImages
from vqa_distill.teacher.run.summary import RunSummary, summarize
from vqa_distill.teacher.run_log import run_logger

UPLOAD_FOLDER_PREFIX = ".batch-upload-"  # input files are written next to the ledger, then removed


@dataclass
class SubmitHooks:
    """Called between the steps of a part (tests stop a submit there, as a kill would)."""

    after_upload: Callable[[BatchRow, FileObject], None] | None = None
    after_create: Callable[[BatchRow, Batch], None] | None = None


@dataclass
class Recovery:
    """What settling interrupted submits did: batches found again, keys given back."""

    adopted: list[str] = field(default_factory=list)
    released: int = 0


@dataclass
class SubmitOutcome:
    """The plan, the batches created now, what could not be sent, and the line sizes."""

    plan: RunPlan
    batches: list[BatchRow]
    failures: list[TeacherRecord]
    recovery: Recovery
    built: BuiltParts
    limits: BatchLimits
    in_flight: int = 0
    open_batches: int = 0
    taken: int = 0  # planned, but answered or claimed elsewhere before this submit's claim: not sent

    @property
    def lines(self) -> int:
        """Lines sent now."""
        return sum(row.requests for row in self.batches)


async def recover_interrupted(book: BatchBook, client: AsyncOpenAI, base_url: str | None) -> Recovery:
    """Adopt the batch of every pending claim made at this endpoint, or give its keys back; hold the lock."""
    recovery = Recovery()
    run_id = book.run_id()
    for row in book.pending():
        if row.base_url != base_url:  # another endpoint's claim: its own submit or collect settles it
            continue
        since = epoch_of(row.created_at)
        batch = await find_batch(client, run_id=run_id, tag=row.tag, since_epoch=since)
        if batch is not None:
            book.adopt(row.tag, batch.id, batch.status, batch.input_file_id)
            recovery.adopted.append(batch.id)
            continue
        await delete_orphan_upload(client, row.file_name, since_epoch=since)
        recovery.released += book.release(row.tag)
    if recovery.adopted or recovery.released:
        run_logger().warning(
            "an interrupted submit was settled: batch(es) %s found again by their metadata, %d key(s) given back",
            ", ".join(recovery.adopted) or "none",
            recovery.released,
        )
    return recovery


async def submit_run(
    params: TeacherParams,
    ledger: Ledger,
    client: AsyncOpenAI,
    *,
    flow_run_id: str | None,
    only_keys: set[str] | None = None,
    limits: BatchLimits | None = None,
    hooks: SubmitHooks | None = None,
    requests: Sequence[TeacherRequest] | None = None,
) -> SubmitOutcome:
    """Submit every request of ``params`` not answered and not in flight; return what was sent.

    ``requests``: submit these instead of the folder's plan (an evaluation's judge calls); the ledger
    still leaves out what is answered or in flight, and the folder's params are not stored for collect.
    """
    limits = limits or BatchLimits.from_env()
    hooks = hooks or SubmitHooks()
    out = Path(params.out)
    with BatchBook(ledger) as book:
        async with run_folder_lock(out, url=ledger.store.url):
            recovery = await recover_interrupted(book, client, params.base_url)
            if requests is None:
                plan = plan_run(params, ledger, only_keys)
                book.save_params(params.model_dump(mode="json"))
            else:
                plan = plan_of_requests(requests, ledger)
            submission = uuid.uuid4().hex[:12]
            claim = _part_row(
                params, submission, 1, 1, requests=len(plan.to_ask), size=0, flow_run_id=flow_run_id
            )
            claimed = book.claim(claim, plan.to_ask) if plan.to_ask else []
            taken = len(plan.to_ask) - len(claimed)
            if taken:
                run_logger().info(
                    "%d request(s) were answered or claimed elsewhere since the plan: not sent", taken
                )
            with tempfile.TemporaryDirectory(prefix=UPLOAD_FOLDER_PREFIX, dir=out) as folder:
                try:
                    built = await _build(claimed, Path(folder), limits, flow_run_id)
                except Exception:
                    book.release(claim.tag)  # nothing uploaded: the keys go back now, not at the next submit
                    raise
                parts = [
                    (_part_row(params, submission, number, len(built.parts), len(part.requests), part.bytes,
                               flow_run_id), part)
                    for number, part in enumerate(built.parts, start=1)
                ]  # fmt: skip
                if claimed:
                    book.split(
                        claim, [(row, [r.key for r in part.requests]) for row, part in parts], built.failures
                    )
                _log_sizes(built, limits)
                rows = await _submit_parts(book, client, params, parts, hooks)
        open_batches = len(book.uncollected())
    return SubmitOutcome(
        plan,
        rows,
        built.failures,
        recovery,
        built,
        limits,
        in_flight=len(ledger.in_flight_keys()),
        open_batches=open_batches,
        taken=taken,
    )


def plan_of_requests(requests: Sequence[TeacherRequest], ledger: Ledger) -> RunPlan:
    """A plan of given requests: those answered or in a batch already are not asked."""
    done, flying = ledger.done_keys(), ledger.in_flight_keys()
    to_ask = [r for r in requests if r.key not in done and r.key not in flying]
    answered = sum(1 for r in requests if r.key in done)
    return RunPlan(images=[], skipped=[], duplicate_files=[], requests=list(requests), to_ask=to_ask,
                   already_answered=answered, in_flight=len(requests) - len(to_ask) - answered)  # fmt: skip


async def _build(
    requests: list[TeacherRequest], folder: Path, limits: BatchLimits, flow_run_id: str | None
) -> BuiltParts:
    """Write the claimed requests into input files, each image prepared once."""
    images = PreparedImages(capacity=PREPARE_AHEAD + IMAGE_CACHE_SLACK)
    try:
        return await build_parts(requests, folder, limits, images=images, flow_run_id=flow_run_id)
    finally:
        images.close()


def _part_row(
    params: TeacherParams,
    submission: str,
    number: int,
    parts: int,
    requests: int,
    size: int,
    flow_run_id: str | None,
) -> BatchRow:
    """Return the pending row of part ``number`` of a submission (part 1's is also the submission's claim)."""
    return BatchRow(
        tag=f"{submission}-p{number}", batch_id=None, status=PENDING, part=number, parts=parts, requests=requests,
        bytes=size, model=params.model, base_url=params.base_url, api_key_block=params.api_key_block,
        flow_run_id=flow_run_id,
    )  # fmt: skip


async def _submit_parts(
    book: BatchBook, client: AsyncOpenAI, params: TeacherParams, parts: list[tuple[BatchRow, PartFile]],
    hooks: SubmitHooks,
) -> list[BatchRow]:  # fmt: skip
    """Submit the parts in order; when one fails, give the keys of the parts never tried back at once."""
    rows: list[BatchRow] = []
    for index, (row, part) in enumerate(parts):
        try:
            rows.append(await _submit_part(book, client, params, part, row, hooks))
        except Exception:
            for later, _ in parts[index + 1 :]:
                book.release(later.tag)
            raise
    return rows


async def _submit_part(
    book: BatchBook,
    client: AsyncOpenAI,
    params: TeacherParams,
    part: PartFile,
    row: BatchRow,
    hooks: SubmitHooks,
) -> BatchRow:
    """Upload, create and record one claimed part; return its row with the batch id."""
    try:
        uploaded = await upload_part(client, part.path, row.file_name)
    except Exception:
        book.release(row.tag)  # no create call was made: no batch can exist
        raise
    if hooks.after_upload:
        hooks.after_upload(row, uploaded)
    metadata = batch_metadata(
        run_id=book.run_id(),
        tag=row.tag,
        out=str(Path(params.out).resolve()),
        part=f"{row.part}/{row.parts}",
        flow_run_id=row.flow_run_id,
    )
    batch = await create_batch(client, uploaded.id, metadata)  # on failure the claim stays: found again later
    if hooks.after_create:
        hooks.after_create(row, batch)
    book.adopt(row.tag, batch.id, batch.status, uploaded.id)
    row.batch_id, row.status, row.input_file_id = batch.id, batch.status, uploaded.id
    return row


def _log_sizes(built: BuiltParts, limits: BatchLimits) -> None:
    """Say how large the lines are and how many fit in one input file."""
    if not built.lines:
        return
    run_logger().info(
        "%d line(s) in %d input file(s), %.1f KiB per line on average (base64 images are 4/3 of their JPEG): "
        "about %s lines fit in one file of at most %d requests and %.0f MiB",
        built.lines,
        len(built.parts),
        built.line_bytes / built.lines / 1024,
        built.lines_per_file(limits),
        limits.max_requests,
        limits.max_bytes / 1024 / 1024,
    )


def submit_summary(
    outcome: SubmitOutcome, params: TeacherParams, dataset: DatasetReport | None, flow_run_id: str | None
) -> RunSummary:
    """Summarize a submit: nothing answered now; the lines sent, the batches, the line sizes, what failed."""
    summary = summarize(
        outcome.plan,
        out=str(Path(params.out).resolve()),
        model=params.model,
        fresh=[],
        cached=0,
        failures=outcome.failures,
        dataset=dataset,
        flow_run_id=flow_run_id,
    )
    summary.not_asked -= outcome.lines + outcome.taken  # sent now, or answered or in flight elsewhere
    summary.batch = BatchSummary(
        mode="submit",
        batch_ids=[row.batch_id for row in outcome.batches if row.batch_id],
        lines=outcome.lines,
        lines_per_file=outcome.built.lines_per_file(outcome.limits),
        mean_line_kib=mean_kib(outcome.built.line_bytes, outcome.built.lines),
        adopted=outcome.recovery.adopted,
        released=outcome.recovery.released,
        in_flight=outcome.in_flight,
        open_batches=outcome.open_batches,
    )
    return summary
