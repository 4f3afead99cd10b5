"""Record a paid outcome from async code: write off the event loop, wait out an outage, spool past it.

Every ask-teacher task run of a flow run shares one event loop, so a record that blocked it (a
``time.sleep`` while the database restarts) would stall every request in flight. Here the write runs
in the ledger's own worker threads and the wait between tries is an ``asyncio.sleep``
(``retry_while_async``). When the database stays away longer than the wait, the outcome goes to the
run folder's spool (``spool.py``) and the task succeeds: failing it would make Prefect retry it, and
the retry would ask, and pay for, the same question again.

The wait is measured per outage, not per record: once the database has been away for the whole
patience, a new outcome is tried once and spooled, instead of every one waiting the full time again.
The first failure of an outage and every spooled outcome are logged as warnings.

Spooled outcomes are written back by ``flush`` once the database answers: after the next successful
write of this process (without holding up other writers), and when a run plans and finishes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vqa_distill.errors import LedgerUnavailable
from vqa_distill.teacher.ledger.spool import Spool
from vqa_distill.teacher.run_log import run_logger
from vqa_distill.waiting import retry_while_async

RECORD_THREADS = 4  # concurrent writes of one ledger (each holds one pooled connection while it runs)
FLUSH_CHUNK = 500  # spooled outcomes written per transaction; their files are removed after each commit

Row = dict[str, Any]  # a record as ``TeacherRecord.to_json()`` gives it
WriteOne = Callable[[Row], bool]  # store one outcome; False: a done record already held the key
WriteMany = Callable[[list[Row]], None]  # store outcomes in one transaction


@dataclass(frozen=True)
class RecordWait:
    """How a record waits for the database: first and longest pause between tries, total patience (s)."""

    first_s: float
    max_s: float
    patience_s: float


class Outage:
    """When the database was first seen away, shared by every record of one ledger; over at a success."""

    def __init__(self, patience_s: float, where: str, spool: Spool):
        self.patience_s = patience_s
        self.since: float | None = None
        self._where = where
        self._spool = spool

    def still_waiting(self, now: float) -> bool:
        """Tell whether a record that just failed may wait again (``retry_while_async``'s patience)."""
        if self.since is None:
            self.since = now
            run_logger().warning("the ledger at %s is unavailable; paid outcomes wait up to %g s for it, then "
                                 "are kept in %s until it is back", self._where, self.patience_s, self._spool.folder)  # fmt: skip
        return now - self.since < self.patience_s

    def over(self) -> None:
        """The database answered: the next failure starts a new outage."""
        self.since = None


class Recorder:
    """The async record path of one ledger: worker threads, the outage clock, the spool and its flush."""

    def __init__(self, write_one: WriteOne, write_many: WriteMany, spool: Spool, where: str, wait: RecordWait):
        self._write_one = write_one
        self._write_many = write_many
        self.spool = spool
        self.wait = wait
        self.outage = Outage(wait.patience_s, where, spool)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._spooled = False  # this process spooled something not flushed yet

    async def record(self, row: Row, label: str) -> bool:
        """Store ``row``; spool it when the database stays away. Return False when a done record held the key."""
        loop = asyncio.get_running_loop()
        pool = self._threads()

        def say(error: BaseException, delay: float) -> None:
            logging.getLogger(__name__).info("%s; recording %s again in %.1f s", error, label, delay)

        try:
            stored = await retry_while_async(
                lambda: loop.run_in_executor(pool, self._write_then_flush, row), LedgerUnavailable,
                wait_s=self.wait.first_s, max_wait_s=self.wait.max_s, patience=self.outage.still_waiting,
                on_retry=say,
            )  # fmt: skip
        except LedgerUnavailable as error:
            path = await loop.run_in_executor(pool, self.spool.put, row)
            self._spooled = True
            run_logger().warning("%s: the outcome of %s is kept in %s and written to the ledger when it is back",
                                 error, label, path)  # fmt: skip
            return True
        self.outage.over()
        return stored

    def flush(self, *, wait: bool = True) -> int:
        """Write every spooled outcome to the database, then remove its file; return how many were written.

        Idempotent: the upsert never replaces a done record, so an outcome written twice (two
        processes flushing one folder) is stored once. ``wait=False`` returns 0 at once when another
        thread of this process is flushing. Raises LedgerUnavailable when the database is still away.
        """
        if not self._flush_lock.acquire(blocking=wait):
            return 0
        try:
            self._spooled = False  # a file spooled from here on sets it again
            entries = self.spool.entries()
            for start in range(0, len(entries), FLUSH_CHUNK):
                chunk = entries[start : start + FLUSH_CHUNK]
                try:
                    self._write_many([row for _path, row in chunk])
                except BaseException:
                    self._spooled = True
                    raise
                self.spool.remove(path for path, _row in chunk)  # only once the transaction committed
            return len(entries)
        finally:
            self._flush_lock.release()

    def close(self) -> None:
        """Wait for the writes in progress, then stop the worker threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _threads(self) -> ThreadPoolExecutor:
        """The ledger's own worker threads: a database that hangs never starves the loop's default pool."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=RECORD_THREADS, thread_name_prefix="ledger")
            return self._pool

    def _write_then_flush(self, row: Row) -> bool:
        """Write one outcome; when this process has spooled ones, the database is back: write them too."""
        stored = self._write_one(row)
        if self._spooled:
            try:
                count = self.flush(wait=False)
            except LedgerUnavailable as error:  # away again: they stay spooled for the next chance
                logging.getLogger(__name__).info("spooled outcomes stay spooled: %s", error)
            else:
                if count:
                    run_logger().info("the ledger is back: %d spooled outcome(s) written from %s", count,
                                      self.spool.folder)  # fmt: skip
        return stored
