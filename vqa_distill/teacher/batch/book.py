"""The Batch API side of a run folder's ledger: the batches sent, the keys they carry, and the folder's lock.

The ``batches`` table sits in the ledger next to the records (its SQLite file or its PostgreSQL
schema, see ``ledger/store.py``). A submission first *claims* its requests: a ``pending`` row under a
tag, and each key not answered and not in flight recorded ``submitted`` with that tag as its batch id,
in one transaction, before any line is written. Only the keys claimed become lines; once they are
written, the claim is *split* into the parts that hold them (one pending row and tag per input file).
Once a part's batch exists its tag is replaced by the batch's id (*adopted*). A submit killed in
between leaves pending rows; the next submit or collect looks each tag up in the batches' metadata at
the endpoint and adopts the batch, or, when no batch was created, gives the keys back (*released*).
So a key is never in two batches, and a line is never sent for a key answered elsewhere.

Submits and collects of one folder take its lock (``flock`` on ``batches.lock``, or a PostgreSQL
advisory lock when the ledger is shared; released when the holder dies, see ``ledger/locks.py``), so
two of them never work on the same pending parts at once.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, insert, select, text, update

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.answers.outcomes import base_record
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.locks import advisory_lock, file_lock
from vqa_distill.teacher.ledger.records import STATUS_SUBMITTED, Ledger, TeacherRecord, ledger_url, utc_now
from vqa_distill.teacher.ledger.store import LedgerStore, is_sqlite, schema_for
from vqa_distill.teacher.ledger.tables import BATCH_META, BATCHES, RECORDS

LOCK_FILE = "batches.lock"
LOCK_TIMEOUT_S = 600.0  # a collect of 50,000 lines takes about a minute: wait for it, not forever

PENDING = "pending"  # claimed; no batch id known yet
RELEASED = "released"  # an interrupted submit that created no batch: its keys went back
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})  # the API's final statuses


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


@contextlib.asynccontextmanager
async def run_folder_lock(
    out: str | Path, timeout_s: float = LOCK_TIMEOUT_S, url: str | None = None
) -> AsyncIterator[None]:
    """Hold the run folder's batch lock; raise FatalRunError when another submit/collect keeps it too long.

    With a SQLite ledger it is ``flock`` on ``batches.lock`` in the folder; with a PostgreSQL ledger
    (``url``, else $VQA_DISTILL_LEDGER_URL) a session advisory lock on the folder's schema, since
    machines sharing the database may not share a file lock (``ledger/locks.py``). Either way the
    lock goes when its holder dies.
    """
    chosen = ledger_url(out, url)

    def refused(what: str) -> Callable[[], BaseException]:
        return lambda: FatalRunError(f"another submit or collect holds {what} (waited {timeout_s:.0f} s)")

    if is_sqlite(chosen):
        path = Path(out) / LOCK_FILE
        async with file_lock(path, wait_s=timeout_s, refused=refused(str(path))):
            yield
        return
    store = LedgerStore(chosen, Path(out))
    try:
        key = int(schema_for(out)[-15:], 16)  # 60 bits of the folder's schema hash: a bigint lock key
        async with advisory_lock(
            store, key, wait_s=timeout_s, refused=refused(f"the lock of {out} in {store.where}")
        ):
            yield
    finally:
        store.close()


class BatchBook:
    """The batches table of one ledger; every call takes its own pooled connection (never a ledger write's)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._store = ledger.store  # the tables exist: the ledger made them
        self._statements = ledger.store.statements

    def close(self) -> None:
        """Nothing to release: the connections belong to the ledger's engine (kept for ``with``)."""

    def __enter__(self) -> BatchBook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the run folder's identity and last submission ------------------------------------------
    def run_id(self) -> str:
        """Return the folder's run id (made once): what a batch's metadata names it by."""
        with self._store.write() as connection:
            connection.execute(self._statements["meta_first"], {"name": "run_id", "value": uuid.uuid4().hex})
        return str(self._meta("run_id"))

    def save_params(self, params: dict[str, Any]) -> None:
        """Remember the teacher parameters of the latest submission (collect rebuilds the dataset with them)."""
        with self._store.write() as connection:
            connection.execute(self._statements["meta_set"], {"name": "params", "value": json.dumps(params)})

    def params(self) -> dict[str, Any] | None:
        """Return the teacher parameters of the latest submission, if any."""
        value = self._meta("params")
        return json.loads(value) if value else None

    def _meta(self, name: str) -> str | None:
        with self._store.read() as connection:
            return connection.execute(select(BATCH_META.c.value).where(BATCH_META.c.name == name)).scalar()

    # --- claims, adoption, release ---------------------------------------------------------------
    def claim(self, row: BatchRow, requests: list[TeacherRequest]) -> list[TeacherRequest]:
        """Write ``row`` and its requests as submitted under its tag, atomically; return the requests claimed.

        A key is claimed only when it has no record or a failed one: a key answered, or claimed by
        another submit, since the plan was read stays as it is and is left out of what is returned,
        so no line is ever built for it. A claim that took no key is released at once.
        """
        now = utc_now()
        claim = self._statements["claim"]
        with self._store.write() as connection:
            connection.execute(
                insert(BATCHES).values(
                    tag=row.tag, status=PENDING, part=row.part, parts=row.parts, requests=row.requests,
                    bytes=row.bytes, model=row.model, base_url=row.base_url, api_key_block=row.api_key_block,
                    flow_run_id=row.flow_run_id, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            claimed = [
                request
                for request in requests
                if connection.execute(claim, _values(_submitted(request, row, now))).rowcount
            ]
            status = PENDING if claimed else RELEASED
            connection.execute(
                update(BATCHES).where(BATCHES.c.tag == row.tag).values(requests=len(claimed), status=status)
            )
        row.requests, row.status = len(claimed), status
        return claimed

    def split(
        self, claim: BatchRow, parts: list[tuple[BatchRow, list[str]]], failures: list[TeacherRecord]
    ) -> None:
        """Turn a claim into the parts its lines were written into, and its unwritable keys into failures, atomically.

        The first part keeps the claim's tag (and row); each other part gets a pending row of its own
        and takes its keys under its tag. A claimed key that became no line (an image that cannot be
        read, a line over the file limit) is given back and recorded failed in the same transaction.
        A claim with no part left is released.
        """
        now = utc_now()
        with self._store.write() as connection:
            for number, (row, keys) in enumerate(parts):
                sizes = {"part": row.part, "parts": row.parts, "requests": row.requests, "bytes": row.bytes}
                if number == 0:
                    assert row.tag == claim.tag, "the first part is the claim itself"
                    connection.execute(
                        update(BATCHES).where(BATCHES.c.tag == claim.tag).values(**sizes, updated_at=now)
                    )
                    continue
                connection.execute(
                    insert(BATCHES).values(
                        tag=row.tag, status=PENDING, **sizes, model=row.model, base_url=row.base_url,
                        api_key_block=row.api_key_block, flow_run_id=row.flow_run_id, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
                move = (
                    update(RECORDS)
                    .where(RECORDS.c.key == bindparam("k"), RECORDS.c.batch_id == claim.tag)
                    .where(RECORDS.c.status == STATUS_SUBMITTED)
                    .values(batch_id=row.tag)
                )
                connection.execute(move, [{"k": key} for key in keys])
            if failures:
                give_back = delete(RECORDS).where(
                    RECORDS.c.key == bindparam("k"),
                    RECORDS.c.batch_id == claim.tag,
                    RECORDS.c.status == STATUS_SUBMITTED,
                )
                connection.execute(give_back, [{"k": failure.key} for failure in failures])
                connection.execute(self._statements["record"], [_values(failure) for failure in failures])
            if not parts:
                connection.execute(
                    update(BATCHES).where(BATCHES.c.tag == claim.tag).values(status=RELEASED, updated_at=now)
                )

    def adopt(self, tag: str, batch_id: str, status: str, input_file_id: str | None) -> None:
        """Name the claimed part's batch: its keys now carry the batch id."""
        with self._store.write() as connection:
            connection.execute(
                update(BATCHES)
                .where(BATCHES.c.tag == tag)
                .values(batch_id=batch_id, status=status, input_file_id=input_file_id, updated_at=utc_now())
            )
            connection.execute(
                update(RECORDS)
                .where(RECORDS.c.batch_id == tag, RECORDS.c.status == STATUS_SUBMITTED)
                .values(batch_id=batch_id)
            )

    def release(self, tag: str) -> int:
        """Give the keys of a claim that never became a batch back (not answered); return how many."""
        with self._store.write() as connection:
            released = connection.execute(
                delete(RECORDS).where(RECORDS.c.batch_id == tag, RECORDS.c.status == STATUS_SUBMITTED)
            ).rowcount
            connection.execute(
                update(BATCHES).where(BATCHES.c.tag == tag).values(status=RELEASED, updated_at=utc_now())
            )
        return released

    # --- progress ---------------------------------------------------------------------------------
    def update(self, batch_id: str, **values: Any) -> None:
        """Store what the endpoint said of a batch (status, counts, file ids, errors)."""
        if "counts" in values:
            values["counts"] = json.dumps(values["counts"], sort_keys=True)
        with self._store.write() as connection:
            connection.execute(
                update(BATCHES).where(BATCHES.c.batch_id == batch_id).values(**values, updated_at=utc_now())
            )

    def mark_collected(self, batch_id: str, counts: dict[str, int]) -> None:
        """Record that a finished batch's lines are in the ledger, and what they were."""
        self.update(batch_id, counts=counts, collected_at=utc_now())

    def rows(self, where: ColumnElement[bool] | str | None = None) -> list[BatchRow]:
        """Return the rows matching ``where`` (a condition on ``BATCHES``, or fixed SQL, never user text), oldest first."""
        query = select(*BATCHES.columns).order_by(BATCHES.c.created_at, BATCHES.c.part)
        if where is not None:
            query = query.where(text(where) if isinstance(where, str) else where)
        with self._store.read() as connection:
            found = [dict(row) for row in connection.execute(query).mappings()]
        for values in found:
            values["counts"] = json.loads(values["counts"] or "{}")
        return [BatchRow(**values) for values in found]

    def pending(self) -> list[BatchRow]:
        """Return the claims whose batch is not known: interrupted submits (the caller holds the lock)."""
        return self.rows(BATCHES.c.status == PENDING)

    def uncollected(self) -> list[BatchRow]:
        """Return the batches whose results are not in the ledger yet."""
        return self.rows(BATCHES.c.batch_id.is_not(None) & BATCHES.c.collected_at.is_(None))


def _submitted(request: TeacherRequest, row: BatchRow, now: str) -> TeacherRecord:
    """Return the ``submitted`` record of a request carried by the claimed part ``row``."""
    record = base_record(request, 0, row.flow_run_id, now, status=STATUS_SUBMITTED)
    record.updated_at, record.batch_id = now, row.tag
    return record


def _values(record: TeacherRecord) -> dict[str, Any]:
    """Return a record as the records table's row (parameters as sorted JSON)."""
    values = record.to_json()
    values["params"] = json.dumps(values["params"], sort_keys=True)
    return values
