"""The Batch API side of a run folder's ledger: the batches sent, the keys they carry, and the folder's lock.

The ``batches`` table sits in ``ledger.sqlite`` next to the records. A part of a submission is first
*claimed*: its row is written as ``pending`` under a tag and its keys are recorded ``submitted`` with
that tag as their batch id, in one transaction, before anything is uploaded. Once the batch exists the
tag is replaced by the batch's id (*adopted*). A submit killed in between leaves a pending row; the
next submit or collect looks the tag up in the batches' metadata at the endpoint and adopts the batch,
or, when no batch was created, gives the keys back (*released*). So a key is never in two batches.

Submits and collects of one folder take its lock (``flock`` on ``batches.lock``; the kernel releases it
when a process dies), so two of them never work on the same pending parts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger import STATUS_FAILED, STATUS_SUBMITTED, Ledger, TeacherRecord, utc_now
from vqa_distill.teacher.outcomes import base_record
from vqa_distill.teacher.request import TeacherRequest

LOCK_FILE = "batches.lock"
LOCK_TIMEOUT_S = 600.0  # a collect of 50,000 lines takes about a minute: wait for it, not forever
LOCK_POLL_S = 0.2
SQLITE_TIMEOUT_S = 30.0

PENDING = "pending"  # claimed; no batch id known yet
RELEASED = "released"  # an interrupted submit that created no batch: its keys went back
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})  # the API's final statuses

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    tag TEXT PRIMARY KEY,
    batch_id TEXT UNIQUE,
    status TEXT NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    model TEXT NOT NULL,
    base_url TEXT,
    api_key_block TEXT,
    flow_run_id TEXT,
    input_file_id TEXT,
    output_file_id TEXT,
    error_file_id TEXT,
    counts TEXT NOT NULL DEFAULT '{}',
    errors TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    collected_at TEXT
);
CREATE TABLE IF NOT EXISTS batch_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class BatchRow:
    """One part of a submission: a batch at the endpoint, or a claim that has none yet."""

    tag: str
    batch_id: str | None
    status: str
    part: int
    parts: int
    requests: int
    bytes: int
    model: str
    base_url: str | None
    api_key_block: str | None
    flow_run_id: str | None
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    errors: str | None = None
    collected_at: str | None = None

    @property
    def file_name(self) -> str:
        """The name the part's input file is uploaded under (how an orphan upload is found again)."""
        return f"vqa-distill-{self.tag}.jsonl"


def in_flight_keys(ledger: Ledger) -> set[str]:
    """Return the keys carried by a batch not collected yet: they are asked by nobody meanwhile."""
    return ledger.keys_with_status(STATUS_SUBMITTED)


@contextlib.asynccontextmanager
async def run_folder_lock(out: str | Path, timeout_s: float = LOCK_TIMEOUT_S) -> AsyncIterator[None]:
    """Hold the run folder's batch lock; raise FatalRunError when another submit/collect keeps it too long."""
    path = Path(out) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FatalRunError(
                        f"another submit or collect holds {path} (waited {timeout_s:.0f} s)"
                    ) from None
                await asyncio.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BatchBook:
    """The batches table of one ledger, on its own connection (never interleaved with a ledger write)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._db = sqlite3.connect(ledger.path, timeout=SQLITE_TIMEOUT_S, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> BatchBook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the run folder's identity and last submission ------------------------------------------
    def run_id(self) -> str:
        """Return the folder's run id (made once): what a batch's metadata names it by."""
        self._db.execute(
            "INSERT OR IGNORE INTO batch_meta(name, value) VALUES ('run_id', ?)", (uuid.uuid4().hex,)
        )
        return str(self._meta("run_id"))

    def save_params(self, params: dict[str, Any]) -> None:
        """Remember the teacher parameters of the latest submission (collect rebuilds the dataset with them)."""
        self._db.execute(
            "INSERT OR REPLACE INTO batch_meta(name, value) VALUES ('params', ?)", (json.dumps(params),)
        )

    def params(self) -> dict[str, Any] | None:
        """Return the teacher parameters of the latest submission, if any."""
        value = self._meta("params")
        return json.loads(value) if value else None

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM batch_meta WHERE name = ?", (name,)).fetchone()
        return row["value"] if row else None

    # --- claims, adoption, release ---------------------------------------------------------------
    def claim(self, row: BatchRow, requests: list[TeacherRequest]) -> int:
        """Write ``row`` as pending and its requests as submitted under its tag, atomically; return keys claimed.

        A key is claimed only when it has no record or a failed one: a key answered or in flight
        meanwhile stays as it is (its line may still be in the file: it is then recorded once).
        """
        now = utc_now()
        with self._immediate():
            self._db.execute(
                "INSERT INTO batches(tag, status, part, parts, requests, bytes, model, base_url, api_key_block, "
                "flow_run_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.tag,
                    PENDING,
                    row.part,
                    row.parts,
                    row.requests,
                    row.bytes,
                    row.model,
                    row.base_url,
                    row.api_key_block,
                    row.flow_run_id,
                    now,
                    now,
                ),
            )
            claimed = 0
            for request in requests:
                record = _submitted(request, row, now)
                values = record.to_json()
                values["params"] = json.dumps(values["params"], sort_keys=True)
                columns = list(values)
                updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in {"key", "created_at"})
                cursor = self._db.execute(
                    f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
                    f"ON CONFLICT(key) DO UPDATE SET {updates} WHERE records.status = '{STATUS_FAILED}'",
                    values,
                )
                claimed += cursor.rowcount
        return claimed

    def adopt(self, tag: str, batch_id: str, status: str, input_file_id: str | None) -> None:
        """Name the claimed part's batch: its keys now carry the batch id."""
        with self._immediate():
            self._db.execute(
                "UPDATE batches SET batch_id = ?, status = ?, input_file_id = ?, updated_at = ? WHERE tag = ?",
                (batch_id, status, input_file_id, utc_now(), tag),
            )
            self._db.execute(
                "UPDATE records SET batch_id = ? WHERE batch_id = ? AND status = ?",
                (batch_id, tag, STATUS_SUBMITTED),
            )

    def release(self, tag: str) -> int:
        """Give the keys of a claim that never became a batch back (not answered); return how many."""
        with self._immediate():
            cursor = self._db.execute(
                "DELETE FROM records WHERE batch_id = ? AND status = ?", (tag, STATUS_SUBMITTED)
            )
            self._db.execute(
                "UPDATE batches SET status = ?, updated_at = ? WHERE tag = ?", (RELEASED, utc_now(), tag)
            )
        return cursor.rowcount

    # --- progress ---------------------------------------------------------------------------------
    def update(self, batch_id: str, **values: Any) -> None:
        """Store what the endpoint said of a batch (status, counts, file ids, errors)."""
        if "counts" in values:
            values["counts"] = json.dumps(values["counts"], sort_keys=True)
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        self._db.execute(
            f"UPDATE batches SET {assignments}, updated_at = :now WHERE batch_id = :batch_id",
            {**values, "now": utc_now(), "batch_id": batch_id},
        )

    def mark_collected(self, batch_id: str, counts: dict[str, int]) -> None:
        """Record that a finished batch's lines are in the ledger, and what they were."""
        self.update(batch_id, counts=counts, collected_at=utc_now())

    def rows(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[BatchRow]:
        """Return the rows matching a fixed SQL condition (never user text), oldest first."""
        rows = []
        for row in self._db.execute(f"SELECT * FROM batches WHERE {where} ORDER BY created_at, part", args):
            values = dict(row)
            values["counts"] = json.loads(values["counts"] or "{}")
            rows.append(BatchRow(**values))
        return rows

    def pending(self) -> list[BatchRow]:
        """Return the claims whose batch is not known: interrupted submits (the caller holds the lock)."""
        return self.rows("status = ?", (PENDING,))

    def uncollected(self) -> list[BatchRow]:
        """Return the batches whose results are not in the ledger yet."""
        return self.rows("batch_id IS NOT NULL AND collected_at IS NULL")

    def _immediate(self) -> _Immediate:
        return _Immediate(self._db)


class _Immediate:
    """BEGIN IMMEDIATE/COMMIT: the write lock from the first statement, so a claim is all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _submitted(request: TeacherRequest, row: BatchRow, now: str) -> TeacherRecord:
    """Return the ``submitted`` record of a request carried by the claimed part ``row``."""
    record = base_record(request, 0, row.flow_run_id, now, status=STATUS_SUBMITTED)
    record.updated_at, record.batch_id = now, row.tag
    return record
