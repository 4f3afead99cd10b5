"""The ledger's tables, declared once for SQLite and PostgreSQL, and the upserts that guard its answers and claims.

The tables carry no schema: in a SQLite file they are the file's own, in PostgreSQL each run folder's
copy lives in its own schema (``schema_translate_map`` puts it there, see ``ledger_store``). The types
are the ones the first SQLite files were written with (TEXT, INTEGER, REAL); sizes and mtimes in
nanoseconds are BIGINT because PostgreSQL's INTEGER is 32 bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    or_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import ColumnCollection

STATUS_ANSWERED = "answered"  # a usable answer (finish_reason "stop", non-empty)
STATUS_UNUSABLE = "unusable"  # paid for, but truncated, filtered or empty: kept out of the dataset
STATUS_FAILED = "failed"  # no answer: the error class and message say why
STATUS_SUBMITTED = "submitted"  # in a Batch API batch not finished yet: not asked again meanwhile
DONE_STATUSES = (STATUS_ANSWERED, STATUS_UNUSABLE)

METADATA = MetaData()

RECORDS = Table(
    "records",
    METADATA,
    Column("key", Text, primary_key=True),  # the content key: the "never pay twice" guarantee
    Column("status", Text, nullable=False),
    Column("image_path", Text, nullable=False),
    Column("rel_path", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("system", Text),
    Column("model", Text, nullable=False),
    Column("params", Text, nullable=False),  # JSON, keys sorted
    Column("answer", Text),
    Column("finish_reason", Text),
    Column("error_class", Text),
    Column("error_message", Text),
    Column("status_code", Integer),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("latency_s", Float),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("flow_run_id", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("batch_id", Text),
    Column("kind", Text, nullable=False, server_default="answer"),
    Index("records_status", "status"),
    Index("records_batch", "batch_id"),
)

FILE_HASHES = Table(
    "file_hashes",
    METADATA,
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
)

BATCHES = Table(
    "batches",
    METADATA,
    Column("tag", Text, primary_key=True),
    Column("batch_id", Text, unique=True),
    Column("status", Text, nullable=False),
    Column("part", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("model", Text, nullable=False),
    Column("base_url", Text),
    Column("api_key_block", Text),
    Column("flow_run_id", Text),
    Column("input_file_id", Text),
    Column("output_file_id", Text),
    Column("error_file_id", Text),
    Column("counts", Text, nullable=False, server_default="{}"),
    Column("errors", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("collected_at", Text),
)

BATCH_META = Table(
    "batch_meta",
    METADATA,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# PostgreSQL only: which schema holds which run folder (an operator's map; the public schema).
RUNS_METADATA = MetaData(schema="public")
RUNS = Table(
    "runs",
    RUNS_METADATA,
    Column("schema_name", Text, primary_key=True),
    Column("path", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

# Columns added after the first ledger files were written (name -> SQL type): opening an older
# ledger adds them, so every ledger has the same columns.
ADDED_COLUMNS = {"batch_id": "TEXT", "kind": "TEXT NOT NULL DEFAULT 'answer'"}

# PostgreSQL has no rowid: an identity column keeps the insertion order ``records()`` promises. It is
# added outside the shared declaration because a SQLite file cannot add an auto-numbered column.
PG_ORDER_COLUMN = "seq"

Upsert = sqlite.Insert | postgresql.Insert  # both have ON CONFLICT; the generic Insert does not

RECORD_COLUMNS = [column.name for column in RECORDS.columns]
_FINAL_ON_UPDATE = {"key", "created_at"}  # an update keeps the key and the first time it was seen


def utc_now() -> str:
    """Return the current UTC time as an ISO-8601 string (what the ledger stores)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _insert(dialect: str, table: Table) -> Upsert:
    """Return the dialect's INSERT (both have ON CONFLICT; the generic one does not)."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")


def upsert_record(dialect: str, held: Callable[[ColumnCollection[str, Any]], ColumnElement[bool]]) -> Upsert:
    """Insert a record, or update the one held when ``held(excluded)`` says it may be replaced (else leave it).

    ``excluded`` is the row being written. The rowcount is 0 when the held record was kept: that is
    how ``Ledger.record`` says "already done" (or "carried by a batch").
    """
    statement = _insert(dialect, RECORDS)
    updates = {name: statement.excluded[name] for name in RECORD_COLUMNS if name not in _FINAL_ON_UPDATE}
    where = held(statement.excluded)
    upsert = statement.on_conflict_do_update(index_elements=["key"], set_=updates, where=where)
    return upsert.execution_options(preserve_rowcount=True)  # SQLAlchemy keeps rowcount for UPDATE/DELETE only


def _status_in(column: ColumnElement[Any], statuses: Iterable[str]) -> ColumnElement[bool]:
    return or_(*(column == status for status in statuses))  # not IN: no per-call rewriting


def takes_an_outcome(new: ColumnCollection[str, Any]) -> ColumnElement[bool]:
    """Which held record an outcome replaces: a failed one; a submitted one only with its batch's outcome or an answer.

    A ``submitted`` record says "batch B carries this key": while it stands, no submit and no online
    run asks the key again. An online failure (or another batch's) would make it ``failed`` and so
    send it again while B still carries it: paid twice. Only B's own outcome (``batch_id`` equal)
    ends it. An answer, from anywhere, does too: an answered key is never asked again, so nothing is
    sent because of it, and the answer already paid for is kept (B's line is then a duplicate).
    """
    held = RECORDS.c.status
    own_batch = RECORDS.c.batch_id == new.batch_id
    return or_(
        held == STATUS_FAILED,
        and_(held == STATUS_SUBMITTED, or_(own_batch, _status_in(new.status, DONE_STATUSES))),
    )


def takes_a_claim(new: ColumnCollection[str, Any]) -> ColumnElement[bool]:
    """Which held record a batch claim replaces: a failed one only (a key in flight is never claimed twice)."""
    return RECORDS.c.status == STATUS_FAILED


def replace_row(dialect: str, table: Table) -> Upsert:
    """INSERT OR REPLACE by primary key (a cache row, a setting), the same statement on both databases."""
    statement = _insert(dialect, table)
    keys = [column.name for column in table.primary_key.columns]
    updates = {column.name: statement.excluded[column.name] for column in table.columns if column.name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=updates)


def insert_new(dialect: str, table: Table) -> Upsert:
    """INSERT OR IGNORE by primary key: the first writer's row stays."""
    return _insert(dialect, table).on_conflict_do_nothing()


@cache
def statements(dialect: str) -> dict[str, Upsert]:
    """Return the upserts of one dialect, built once per process (record() is on every answer's path)."""
    return {
        "record": upsert_record(dialect, takes_an_outcome),  # a done record is final
        "claim": upsert_record(dialect, takes_a_claim),
        "file_hash": replace_row(dialect, FILE_HASHES),
        "meta_set": replace_row(dialect, BATCH_META),
        "meta_first": insert_new(dialect, BATCH_META),
        "run": insert_new(dialect, RUNS),
    }
