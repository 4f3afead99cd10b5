"""The answer ledger: every teacher outcome, keyed by request content, in one SQLite file per run folder.

Why SQLite: each outcome is committed on its own (a SIGKILL loses at most the request in flight),
WAL mode lets ``failed``/``responses`` exports and the dashboards read while a run appends, and the
primary key on the content key is the "never pay twice" guarantee. An answer, once stored, is never
replaced by a later failure.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_lines

LEDGER_FILE = "ledger.sqlite"
RESPONSES_FILE = "responses.jsonl"
FAILED_FILE = "failed.jsonl"

STATUS_ANSWERED = "answered"  # a usable answer (finish_reason "stop", non-empty)
STATUS_UNUSABLE = "unusable"  # paid for, but truncated, filtered or empty: kept out of the dataset
STATUS_FAILED = "failed"  # no answer: the error class and message say why
STATUS_SUBMITTED = "submitted"  # in a Batch API batch not finished yet: not asked again meanwhile
DONE_STATUSES = (STATUS_ANSWERED, STATUS_UNUSABLE)

KIND_ANSWER = "answer"  # an answer to a prompt or to a generated question: a dataset row
KIND_QUESTIONS = "questions"  # a list of questions generated for one image x prompt (JSON in ``answer``)
KIND_JUDGE = "judge"  # a judge's score of one (image, question, answer) (JSON in ``answer``)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    image_path TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    answer TEXT,
    finish_reason TEXT,
    error_class TEXT,
    error_message TEXT,
    status_code INTEGER,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    flow_run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_status ON records(status);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""

# Columns added after the first ledger files were written (name -> SQL type): opening an older
# ledger adds them, so every ledger file has the same columns.
ADDED_COLUMNS = {"batch_id": "TEXT", "kind": "TEXT NOT NULL DEFAULT 'answer'"}

# Insert, or update a failed or submitted record; a done record is final (the WHERE guards it).
_UPSERT = """
INSERT INTO records ({columns}) VALUES ({placeholders})
ON CONFLICT(key) DO UPDATE SET {updates}, created_at = records.created_at
WHERE records.status IN ('failed', 'submitted')
"""


def utc_now() -> str:
    """Return the current UTC time as an ISO-8601 string (what the ledger stores)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class TeacherRecord:
    """One outcome of one request: an answer or an error, with its cost and timing."""

    key: str
    status: str
    image_path: str
    rel_path: str
    sha256: str
    prompt: str
    system: str | None
    model: str
    params: dict[str, Any]
    answer: str | None = None
    finish_reason: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    status_code: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    attempts: int = 1
    flow_run_id: str | None = None
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    batch_id: str | None = None  # the Batch API batch that carries (submitted) or answered the request
    kind: str = KIND_ANSWER  # KIND_ANSWER, KIND_QUESTIONS (a question set) or KIND_JUDGE (a judge's score)

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (the export format of responses/failed files)."""
        return asdict(self)


_COLUMNS = [f for f in TeacherRecord.__dataclass_fields__]
_UPSERT_SQL = _UPSERT.format(  # built once: record() is on every answer's path
    columns=", ".join(_COLUMNS),
    placeholders=", ".join(f":{c}" for c in _COLUMNS),
    updates=", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in {"key", "created_at"}),
)


class Ledger:
    """A connection to one run folder's ledger; one per thread/event loop (SQLite connections are not shared)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / LEDGER_FILE
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills; WAL keeps it atomic
        self._db.executescript(_SCHEMA)
        self._add_columns()

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------
    def record(self, record: TeacherRecord) -> bool:
        """Store an outcome in its own transaction; return False when a done record already held the key."""
        values = record.to_json()
        values["params"] = json.dumps(values["params"], sort_keys=True)
        values["updated_at"] = utc_now()
        cursor = self._db.execute(_UPSERT_SQL, values)
        return cursor.rowcount > 0

    def remember_hashes(self, entries: Iterable[tuple[str, int, int, str]]) -> None:
        """Cache (path, size, mtime_ns, sha256) of files, in one transaction, so reruns skip re-reading them."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)", entries
            )

    # --- reading -------------------------------------------------------------------------------
    def known_hash(self, path: Path, stat: os.stat_result) -> str | None:
        """Return the cached sha256 of an unchanged file, else None."""
        row = self._db.execute(
            "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            (str(path), stat.st_size, stat.st_mtime_ns),
        ).fetchone()
        return row["sha256"] if row else None

    def keys_with_status(self, *statuses: str) -> set[str]:
        """Return the keys whose records have one of ``statuses`` (no record is decoded)."""
        marks = ", ".join("?" * len(statuses))
        return {row["key"] for row in self._db.execute(f"SELECT key FROM records WHERE status IN ({marks})", statuses)}

    def done_keys(self) -> set[str]:
        """Return the keys that were answered (usable or not): these are never asked again."""
        rows = self._db.execute("SELECT key FROM records WHERE status IN (?, ?)", DONE_STATUSES)
        return {row["key"] for row in rows}

    def records(self, *statuses: str) -> Iterator[TeacherRecord]:
        """Yield stored records (all, or those with the given statuses) in insertion order."""
        if not statuses:
            return self._records_where("1", ())
        return self._records_where(f"status IN ({', '.join('?' * len(statuses))})", statuses)

    def get(self, key: str) -> TeacherRecord | None:
        """Return the record of one key, if any."""
        return next((r for r in self._records_where("key = ?", (key,))), None)

    def in_batch(self, batch_id: str) -> list[TeacherRecord]:
        """Return the records a Batch API batch carries (submitted) or answered."""
        return list(self._records_where("batch_id = ?", (batch_id,)))

    def failed_in_run(self, flow_run_id: str) -> list[TeacherRecord]:
        """Return the records still failed whose last attempt belonged to the given flow run."""
        return list(self._records_where("status = 'failed' AND flow_run_id = ?", (flow_run_id,)))

    def export(self) -> tuple[int, int]:
        """Write responses.jsonl (every answer) and failed.jsonl (every failure) atomically; return counts."""
        responses = atomic_write_lines(
            self.out_dir / RESPONSES_FILE,
            (json.dumps(r.to_json(), ensure_ascii=False) for r in self.records(*DONE_STATUSES)),
        )
        failed = atomic_write_lines(
            self.out_dir / FAILED_FILE,
            (json.dumps(r.to_json(), ensure_ascii=False) for r in self.records(STATUS_FAILED)),
        )
        return responses, failed

    def _records_where(self, where: str, args: tuple[Any, ...]) -> Iterator[TeacherRecord]:
        """Yield the records matching a fixed SQL condition (never user text) with bound ``args``."""
        for row in self._db.execute(f"SELECT * FROM records WHERE {where} ORDER BY rowid", args):
            values = dict(row)
            values["params"] = json.loads(values["params"])
            yield TeacherRecord(**values)

    def _add_columns(self) -> None:
        """Add the columns of ADDED_COLUMNS an older ledger file lacks (idempotent, safe across processes)."""
        with _Transaction(self._db, "BEGIN IMMEDIATE"):  # re-read under the write lock: one process adds
            have = {row["name"] for row in self._db.execute("PRAGMA table_info(records)")}
            for name, sql_type in ADDED_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE records ADD COLUMN {name} {sql_type}")
            self._db.execute("CREATE INDEX IF NOT EXISTS records_batch ON records(batch_id)")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN/COMMIT around a batch of writes (the connection is in autocommit mode otherwise)."""

    def __init__(self, db: sqlite3.Connection, begin: str = "BEGIN"):
        self._db = db
        self._begin = begin

    def __enter__(self) -> None:
        self._db.execute(self._begin)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
