"""The answer ledger: every teacher outcome, keyed by request content, in one store per run folder.

The store is the run folder's SQLite file (``ledger.sqlite``), or, when ``VQA_DISTILL_LEDGER_URL``
names a PostgreSQL database, that folder's schema in it (SQLite's WAL does not work across machines on
a network file system). Both go through one code path (``store.py``, ``tables.py``). Each
outcome is committed on its own (a SIGKILL loses at most the request in flight), readers never wait
for the writer, and the primary key on the content key is the "never pay twice" guarantee. An answer,
once stored, is never replaced by a later failure. A paid outcome that cannot reach the database is
kept in the run folder's spool until it can (``outage.py``, ``spool.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, select, true

from vqa_distill.atomic import atomic_write_lines
from vqa_distill.errors import LedgerUnavailable
from vqa_distill.teacher.ledger.hashes import HashCache
from vqa_distill.teacher.ledger.outage import Recorder, RecordWait
from vqa_distill.teacher.ledger.spool import Spool
from vqa_distill.teacher.ledger.store import LedgerStore, is_sqlite, schema_exists, sqlite_url
from vqa_distill.teacher.ledger.tables import (
    ADDED_COLUMNS,
    DONE_STATUSES,
    FILE_HASHES,
    RECORDS,
    STATUS_ANSWERED,
    STATUS_FAILED,
    STATUS_SUBMITTED,
    STATUS_UNUSABLE,
    utc_now,
)
from vqa_distill.waiting import retry_while

__all__ = [
    "ADDED_COLUMNS",
    "DONE_STATUSES",
    "FAILED_FILE",
    "KIND_ANSWER",
    "KIND_JUDGE",
    "KIND_QUESTIONS",
    "LEDGER_FILE",
    "LEDGER_URL_ENV",
    "RESPONSES_FILE",
    "STATUS_ANSWERED",
    "STATUS_FAILED",
    "STATUS_SUBMITTED",
    "STATUS_UNUSABLE",
    "Ledger",
    "TeacherRecord",
    "ledger_exists",
    "ledger_url",
    "utc_now",
]

LEDGER_FILE = "ledger.sqlite"
RESPONSES_FILE = "responses.jsonl"
FAILED_FILE = "failed.jsonl"
RECORD_PATIENCE_S = 120.0  # how long record() waits for a database that went away (a restart takes seconds)
RECORD_FIRST_DELAY_S = 0.2
RECORD_MAX_DELAY_S = 5.0
LEDGER_URL_ENV = "VQA_DISTILL_LEDGER_URL"  # a PostgreSQL URL: the shared ledger; unset: the run folder's file

KIND_ANSWER = "answer"  # an answer to a prompt or to a generated question: a dataset row
KIND_QUESTIONS = "questions"  # a list of questions generated for one image x prompt (JSON in ``answer``)
KIND_JUDGE = "judge"  # a judge's score of one (image, question, answer) (JSON in ``answer``)


def ledger_url(out_dir: str | Path, url: str | None = None) -> str:
    """Return the database URL of a run folder's ledger: ``url``, else $VQA_DISTILL_LEDGER_URL, else its file."""
    chosen = url if url is not None else os.environ.get(LEDGER_URL_ENV) or None
    return chosen or sqlite_url(Path(out_dir) / LEDGER_FILE)


def ledger_exists(out_dir: str | Path, url: str | None = None) -> bool:
    """Tell whether a run folder has a ledger: its SQLite file, or its schema in the PostgreSQL database."""
    chosen = ledger_url(out_dir, url)
    if is_sqlite(chosen):
        return (Path(out_dir) / LEDGER_FILE).is_file()
    return schema_exists(chosen, Path(out_dir))


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


class Ledger:
    """One run folder's ledger; safe to share between threads (each call takes a pooled connection).

    ``url`` (else ``$VQA_DISTILL_LEDGER_URL``) names a PostgreSQL database; with neither, the ledger is
    ``<out_dir>/ledger.sqlite``. ``path`` is that file's path either way.
    """

    def __init__(self, out_dir: str | Path, url: str | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / LEDGER_FILE
        self.store = LedgerStore(ledger_url(self.out_dir, url), self.out_dir)
        self._upsert = self.store.statements["record"]
        self.spool = Spool(self.out_dir)
        wait = RecordWait(first_s=RECORD_FIRST_DELAY_S, max_s=RECORD_MAX_DELAY_S, patience_s=RECORD_PATIENCE_S)
        self._recorder = Recorder(self._write_one, self._write_many, self.spool, self.store.where, wait)

    def __repr__(self) -> str:
        return f"Ledger({str(self.out_dir)!r}, at {self.store.where})"

    def close(self) -> None:
        """Give the connections back (a SQLite file is closed with its last ledger; WAL checkpointed)."""
        self._recorder.close()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------
    def record(self, record: TeacherRecord) -> bool:
        """Store an outcome in its own transaction; return False when a done record already held the key, or a batch carries it.

        For synchronous callers (a batch collect, tools): the wait blocks the calling thread. If the
        database is away (a PostgreSQL restart), waiting for it is cheaper than failing, since a
        failed task's retry would ask and pay again; the upsert is idempotent, so it is tried again
        for up to ``RECORD_PATIENCE_S``. Code on an event loop uses ``record_async``.
        """
        row = _stamped(record)

        def say(error: BaseException, delay: float) -> None:
            logging.getLogger(__name__).warning("%s; recording %s again in %.1f s", error, record.rel_path, delay)

        return retry_while(
            lambda: self._write_one(row), LedgerUnavailable, wait_s=RECORD_FIRST_DELAY_S,
            max_wait_s=RECORD_MAX_DELAY_S, patience=RECORD_PATIENCE_S, on_retry=say,
        )  # fmt: skip

    async def record_async(self, record: TeacherRecord) -> bool:
        """Store an outcome from the event loop without blocking it; False when a done record held the key.

        The write runs in the ledger's worker threads and a database that went away is waited for
        with ``asyncio.sleep``, up to ``RECORD_PATIENCE_S`` per outage (``outage.py``). Past that the
        outcome is spooled in the run folder (``spool.py``), counts as done for the next plan, and
        is written when the database answers; this returns True then, so the task succeeds and is
        never retried (a retry would pay for the answer again).
        """
        return await self._recorder.record(_stamped(record), record.rel_path)

    def flush_spool(self) -> int:
        """Write the run folder's spooled outcomes to the database and remove their files; return how many.

        Called when a run plans and when it finishes (also after any successful ``record_async`` of
        a process that spooled). Raises LedgerUnavailable when the database is still away.
        """
        return self._recorder.flush()

    def _write_one(self, row: dict[str, Any]) -> bool:
        """Upsert one outcome on its own connection, committed by itself (callable from any thread)."""
        with self.store.write_one() as connection:  # one statement: atomic on its own
            return connection.execute(self._upsert, _db_values(row)).rowcount > 0

    def _write_many(self, rows: list[dict[str, Any]]) -> None:
        """Upsert outcomes in one transaction, one statement each (a key may come twice: failed, then answered)."""
        with self.store.write() as connection:
            for row in rows:
                connection.execute(self._upsert, _db_values(row))

    def remember_hashes(self, entries: Iterable[tuple[str, int, int, str]]) -> None:
        """Cache (path, size, mtime_ns, sha256) of files, in one transaction, so reruns skip re-reading them."""
        rows = [{"path": p, "size": size, "mtime_ns": mtime, "sha256": sha} for p, size, mtime, sha in entries]
        if rows:
            with self.store.write() as connection:
                connection.execute(self.store.statements["file_hash"], rows)

    # --- reading -------------------------------------------------------------------------------
    def hash_cache(self) -> HashCache:
        """Read every cached file hash in one query; a plan looks files up in it and writes back only changes."""
        c = FILE_HASHES.c
        with self.store.read() as connection:
            result = connection.execute(select(c.path, c.size, c.mtime_ns, c.sha256))
            entries = result.cursor.fetchall()  # the driver's tuples: no Row objects for 100,000 files
            result.close()
        return HashCache(entries)

    def known_hash(self, path: Path, stat: os.stat_result) -> str | None:
        """Return the cached sha256 of an unchanged file, else None (one query: a plan uses ``hash_cache``)."""
        c = FILE_HASHES.c
        query = select(c.sha256).where(c.path == str(path), c.size == stat.st_size, c.mtime_ns == stat.st_mtime_ns)
        with self.store.read() as connection:
            return connection.execute(query).scalar()

    def keys_with_status(self, *statuses: str) -> set[str]:
        """Return the keys whose records have one of ``statuses`` (no record is decoded)."""
        query = select(RECORDS.c.key).where(RECORDS.c.status.in_(statuses))
        with self.store.read() as connection:
            result = connection.execute(query)
            # the driver's rows as they are (TEXT needs no conversion): 3x faster than Row objects on 100,000 keys
            keys = {row[0] for row in result.cursor.fetchall()}
            result.close()
            return keys

    def in_flight_keys(self) -> set[str]:
        """Return the keys carried by a batch not collected yet: they are asked by nobody meanwhile."""
        return self.keys_with_status(STATUS_SUBMITTED)

    def done_keys(self) -> set[str]:
        """Return the keys that were answered (usable or not), spooled ones too: these are never asked again."""
        return self.keys_with_status(*DONE_STATUSES) | self.spool.keys_with_status(DONE_STATUSES)

    def records(self, *statuses: str) -> Iterator[TeacherRecord]:
        """Yield stored records (all, or those with the given statuses) in insertion order."""
        return self._records_where(RECORDS.c.status.in_(statuses) if statuses else true())

    def get(self, key: str) -> TeacherRecord | None:
        """Return the record of one key, if any."""
        found = list(self._records_where(RECORDS.c.key == key))  # read to the end: the connection goes back
        return found[0] if found else None

    async def get_async(self, key: str) -> TeacherRecord | None:
        """Return the record of one key, read in a worker thread: a database read must not stall the loop."""
        return await asyncio.to_thread(self.get, key)

    def in_batch(self, batch_id: str) -> list[TeacherRecord]:
        """Return the records a Batch API batch carries (submitted) or answered."""
        return list(self._records_where(RECORDS.c.batch_id == batch_id))

    def failed_in_run(self, flow_run_id: str) -> list[TeacherRecord]:
        """Return the records still failed whose last attempt belonged to the given flow run."""
        c = RECORDS.c
        return list(self._records_where(and_(c.status == STATUS_FAILED, c.flow_run_id == flow_run_id)))

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

    def _records_where(self, where: ColumnElement[bool]) -> Iterator[TeacherRecord]:
        """Yield the records matching ``where``, oldest first, fetched in chunks (a ledger may hold 100,000)."""
        query = select(*RECORDS.columns).where(where).order_by(self.store.order)
        with self.store.read() as connection:
            for row in connection.execution_options(yield_per=_CHUNK).execute(query).mappings():
                values = dict(row)
                values["params"] = json.loads(values["params"])
                yield TeacherRecord(**values)


_CHUNK = 1000


def _stamped(record: TeacherRecord) -> dict[str, Any]:
    """Return the record as a JSON-ready dict, ``updated_at`` now (when it was recorded or spooled)."""
    row = record.to_json()
    row["updated_at"] = utc_now()
    return row


def _db_values(row: dict[str, Any]) -> dict[str, Any]:
    """Return a record dict as the upsert takes it: the parameters as sorted JSON text."""
    return {**row, "params": json.dumps(row["params"], sort_keys=True)}
