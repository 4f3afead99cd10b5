"""The Batch API calls a run makes (Files and Batches), and the one place their errors are translated.

Every call fails as a FatalRunError saying what was being done: a submit or collect is a short run
that the next one repeats, not a fan-out that records per-image errors. ``batches.create`` is never
retried blindly: a create whose answer was lost is found again by its metadata (``find_batch``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Final

import openai
from openai import AsyncOpenAI
from openai.types import Batch, FileObject

from vqa_distill.errors import FatalRunError, TeacherAuthError, TeacherUnreachableError
from vqa_distill.teacher.batch.files import BATCH_ENDPOINT
from vqa_distill.teacher.endpoint.client import redact, translate_error

COMPLETION_WINDOW: Final = "24h"  # the only window the Batch API offers
META_RUN = "vqa_distill_run"  # the run folder's id (batch_book.BatchBook.run_id)
META_TAG = "vqa_distill_tag"  # the claimed part (batch_book.BatchRow.tag)
META_OUT = "vqa_distill_out"  # the run folder, for people reading the endpoint's dashboard
META_PART = "vqa_distill_part"  # "2/3"
META_FLOW_RUN = "vqa_distill_flow_run"
META_VALUE_CHARS = 512  # the API's limit on a metadata value
LIST_PAGE = 100  # the API's largest page of batches
LOOKBACK_SLACK_S = 3600  # listing stops at batches created this long before the claim (clock skew)


def batch_metadata(*, run_id: str, tag: str, out: str, part: str, flow_run_id: str | None) -> dict[str, str]:
    """Return the metadata that names a batch's run folder and part (how an interrupted submit finds it)."""
    values = {
        META_RUN: run_id,
        META_TAG: tag,
        META_OUT: out,
        META_PART: part,
        META_FLOW_RUN: flow_run_id or "",
    }
    return {key: value[-META_VALUE_CHARS:] for key, value in values.items()}


def remote_error(exc: BaseException, doing: str, client: AsyncOpenAI) -> FatalRunError:
    """Translate a failed Batch API call into the run-level error that says what was being done."""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return TeacherAuthError(
            redact(
                f"{doing}: the endpoint {client.base_url} refused the API key (HTTP {exc.status_code})",
                client.api_key,
            )
        )
    if isinstance(exc, openai.APIConnectionError):
        return TeacherUnreachableError(
            redact(f"{doing}: cannot reach the endpoint {client.base_url}", client.api_key)
        )
    return FatalRunError(f"{doing}: {translate_error(exc, api_key=client.api_key)}")


async def upload_part(client: AsyncOpenAI, path: Path, file_name: str) -> FileObject:
    """Upload one input file with purpose ``batch``."""
    try:
        with path.open("rb") as handle:
            return await client.files.create(file=(file_name, handle, "application/jsonl"), purpose="batch")
    except openai.OpenAIError as exc:
        raise remote_error(exc, f"uploading {file_name}", client) from None


async def create_batch(client: AsyncOpenAI, input_file_id: str, metadata: dict[str, str]) -> Batch:
    """Create a batch of chat completions over an uploaded file, within the 24 h window."""
    try:
        return await client.batches.create(
            input_file_id=input_file_id,
            endpoint=BATCH_ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata=metadata,
        )
    except openai.OpenAIError as exc:
        raise remote_error(exc, f"creating the batch of {metadata.get(META_TAG)}", client) from None


async def retrieve_batch(client: AsyncOpenAI, batch_id: str) -> Batch:
    """Return a batch's current state."""
    try:
        return await client.batches.retrieve(batch_id)
    except openai.OpenAIError as exc:
        raise remote_error(exc, f"reading batch {batch_id}", client) from None


async def list_batches(client: AsyncOpenAI, *, since_epoch: float) -> list[Batch]:
    """Return the endpoint's batches created since ``since_epoch`` (minus slack), newest first."""
    found: list[Batch] = []
    try:
        async for batch in client.batches.list(limit=LIST_PAGE):
            if batch.created_at < since_epoch - LOOKBACK_SLACK_S:
                break
            found.append(batch)
    except openai.OpenAIError as exc:
        raise remote_error(exc, "listing batches", client) from None
    return found


async def find_batch(client: AsyncOpenAI, *, run_id: str, tag: str, since_epoch: float) -> Batch | None:
    """Return the batch whose metadata names this run folder and claimed part, if it exists."""
    for batch in await list_batches(client, since_epoch=since_epoch):
        metadata = batch.metadata or {}
        if metadata.get(META_RUN) == run_id and metadata.get(META_TAG) == tag:
            return batch
    return None


async def delete_orphan_upload(client: AsyncOpenAI, file_name: str, *, since_epoch: float) -> int:
    """Delete input files named ``file_name`` (an upload whose batch was never created); return how many."""
    deleted = 0
    try:
        async for stored in client.files.list(purpose="batch", order="desc"):
            if stored.created_at < since_epoch - LOOKBACK_SLACK_S:
                break
            if stored.filename == file_name:
                await client.files.delete(stored.id)
                deleted += 1
    except openai.OpenAIError as exc:
        raise remote_error(exc, f"looking for the upload {file_name}", client) from None
    return deleted


async def read_file_lines(client: AsyncOpenAI, file_id: str) -> list[str]:
    """Return the lines of an output or error file."""
    try:
        content = await client.files.content(file_id)
    except openai.OpenAIError as exc:
        raise remote_error(exc, f"reading file {file_id}", client) from None
    return [line for line in content.text.splitlines() if line.strip()]


def batch_counts(batch: Batch) -> dict[str, int]:
    """Return the endpoint's request counts of a batch (zeros while it validates)."""
    counts = batch.request_counts
    return {"total": counts.total, "completed": counts.completed, "failed": counts.failed} if counts else {}


def batch_errors(batch: Batch) -> str | None:
    """Return a refused batch's validation errors as one line, or None."""
    data = batch.errors.data if batch.errors and batch.errors.data else []
    described = [f"line {e.line}: {e.message}" if e.line else str(e.message or e.code) for e in data]
    return "; ".join(described) or None


def epoch_of(iso_time: str) -> float:
    """Return the epoch seconds of a ledger timestamp."""
    return datetime.fromisoformat(iso_time).timestamp()
