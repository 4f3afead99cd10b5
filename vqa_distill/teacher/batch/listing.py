"""What is in flight, done, failed or expired: a run folder's batches, or every vqa-distill batch at an endpoint.

A folder's listing comes from its ledger, refreshed from the endpoint for the batches not collected yet
(statuses and counts only: collecting is ``collect``'s job). An endpoint's listing reads the batches'
metadata, which names the run folder of each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from vqa_distill.teacher.batch.book import BatchBook, BatchRow
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.remote import (
    META_OUT,
    META_PART,
    META_RUN,
    batch_counts,
    batch_errors,
    epoch_of,
    list_batches,
    retrieve_batch,
)
from vqa_distill.teacher.ledger.records import Ledger, ledger_exists

LOOKBACK_S = 7 * 24 * 3600  # an endpoint listing goes back a week: older batches are long finished
PROBLEM_STATUSES = frozenset({"failed", "expired", "cancelled"})
_AGE_UNITS = ((86_400, "d"), (3600, "h"), (60, "min"))


def format_age(seconds: float) -> str:
    """Return an age in the largest unit that keeps it readable (``45 s``, ``12 min``, ``3.5 h``, ``2.0 d``)."""
    for size, unit in _AGE_UNITS:
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f} {unit}" if unit == "min" else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"


def _row(
    out: str | None,
    batch: str,
    status: str,
    part: str | None,
    counts: dict[str, int],
    created: float,
    collected: bool,
    lines: int | None = None,
) -> dict[str, Any]:
    return {
        "run folder": out or "",
        "batch": batch,
        "part": part or "",
        "status": status,
        "collected": "yes" if collected else "no",
        "lines": lines if lines is not None else counts.get("total", 0),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "age": format_age(max(0.0, time.time() - created)),
    }


def folder_rows(out: str | Path, rows: list[BatchRow]) -> list[dict[str, Any]]:
    """Return the listing rows of a folder's batches (claims never settled show their tag)."""
    shown = str(Path(out).resolve())
    return [
        _row(
            shown,
            row.batch_id or row.tag,
            row.status,
            f"{row.part}/{row.parts}",
            row.counts,
            epoch_of(row.created_at),
            row.collected_at is not None,
            row.requests,
        )
        for row in rows
    ]


async def refresh_folder(out: str | Path, clients: BatchClients) -> list[dict[str, Any]]:
    """Read the state of the folder's batches not collected yet from their endpoint; return its listing."""
    if not ledger_exists(out):
        return []
    with Ledger(out) as ledger, BatchBook(ledger) as book:
        for row in book.uncollected():
            assert row.batch_id is not None
            batch = await retrieve_batch(await clients.get(row.base_url, row.api_key_block), row.batch_id)
            book.update(
                row.batch_id, status=batch.status, counts=batch_counts(batch), errors=batch_errors(batch)
            )
        return folder_rows(out, book.rows())


def stored_rows(out: str | Path) -> list[dict[str, Any]]:
    """Return the listing of a folder's batches as its ledger last saw them (no call)."""
    if not ledger_exists(out):
        return []
    with Ledger(out) as ledger, BatchBook(ledger) as book:
        return folder_rows(out, book.rows())


async def endpoint_rows(client: AsyncOpenAI) -> list[dict[str, Any]]:
    """Return every vqa-distill batch of the last week at the endpoint, newest first.

    Whether a batch is collected is known where its run folder is: "?" when that is not on this machine.
    """
    rows = []
    collected: dict[str, set[str]] = {}  # run folder -> its collected batch ids
    for batch in await list_batches(client, since_epoch=time.time() - LOOKBACK_S):
        metadata = batch.metadata or {}
        if META_RUN not in metadata:
            continue
        out = metadata.get(META_OUT) or ""
        if out not in collected:
            collected[out] = _collected_ids(out)
        row = _row(
            out,
            batch.id,
            batch.status,
            metadata.get(META_PART),
            batch_counts(batch),
            batch.created_at,
            batch.id in collected[out],
        )
        if not ledger_exists(out):
            row["collected"] = "?"
        rows.append(row)
    return rows


def _collected_ids(out: str) -> set[str]:
    """Return the ids of the batches a run folder on this machine has collected (none when it is elsewhere)."""
    if not out or not ledger_exists(out):
        return set()
    with Ledger(out) as ledger, BatchBook(ledger) as book:
        return {row.batch_id for row in book.rows("collected_at IS NOT NULL") if row.batch_id}


async def discover_run_folders(client: AsyncOpenAI) -> list[str]:
    """Return the run folders named by the endpoint's vqa-distill batches that have a ledger on this machine."""
    folders: list[str] = []
    for batch in await list_batches(client, since_epoch=time.time() - LOOKBACK_S):
        out = (batch.metadata or {}).get(META_OUT)
        if out and out not in folders and ledger_exists(out):
            folders.append(out)
    return folders


def secret_blocks(outs: list[str]) -> set[str]:
    """Return the Prefect Secret blocks named by the folders' batches not collected yet (no call)."""
    blocks: set[str] = set()
    for out in outs:
        if ledger_exists(out):
            with Ledger(out) as ledger, BatchBook(ledger) as book:
                blocks |= {row.api_key_block for row in book.uncollected() if row.api_key_block}
    return blocks


def has_problems(rows: list[dict[str, Any]]) -> bool:
    """Tell whether a listing shows a failed, expired or cancelled batch."""
    return any(row["status"] in PROBLEM_STATUSES for row in rows)
