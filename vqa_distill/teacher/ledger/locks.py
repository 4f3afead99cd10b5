"""One holder at a time, across processes and machines, on the ledger's own storage.

A SQLite ledger's run folder is on one machine: ``flock`` on a file there. A PostgreSQL ledger is
shared by machines that need not share a file system (and ``flock`` over NFS is not a lock): a
session advisory lock in that database. Either way the lock goes when its holder dies: the kernel
closes the file, the server drops the session. A machine that dies without closing its socket is
found out by TCP keepalives that the lock's session asks the server for (``PG_KEEPALIVES``), so its
lock lasts about a minute, not the two hours of the system's default.

Used by the run folder's batch lock (``batch/book.py``) and the shard lock (``shards/lock.py``);
waiting goes through ``vqa_distill.waiting``, and a holder kept past the wait is the caller's error
(``refused``), worded by the caller, who knows what is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sqlalchemy import Connection, exc, text

from vqa_distill.teacher.ledger.store import LedgerStore
from vqa_distill.waiting import poll_until_async

LOCK_POLL_S = 0.2  # how often a waiter tries the lock again
# Server-side keepalives of a lock's session, in seconds (PostgreSQL settings any user may set):
# a holder whose machine died silently loses the lock after about idle + interval x count = 60 s.
PG_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}

Refused = Callable[[], BaseException]  # the error to raise when the lock stayed held past the wait


def lock_key(*parts: str) -> int:
    """Return a PostgreSQL advisory lock key (a signed 64-bit integer) named by ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _wait_for(try_lock: Callable[[], bool], wait_s: float, refused: Refused) -> None:
    """Try the lock every ``LOCK_POLL_S`` until it is ours; raise ``refused()`` after ``wait_s``."""
    await poll_until_async(try_lock, timeout_s=wait_s, every_s=LOCK_POLL_S, timed_out=refused)


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, wait_s: float, refused: Refused) -> AsyncIterator[None]:
    """Hold ``flock`` on ``path`` (made if missing, never deleted: a waiter may hold it open)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:

        def try_lock() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        await _wait_for(try_lock, wait_s, refused)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def advisory_lock(
    store: LedgerStore, key: int, *, wait_s: float, refused: Refused
) -> AsyncIterator[None]:
    """Hold the session advisory lock ``key`` of the store's PostgreSQL database on a connection of its own."""
    with store.read() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # the session's lock, not a transaction's
        _keepalives(connection, PG_KEEPALIVES)
        held = False

        def try_lock() -> bool:
            nonlocal held
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            return held

        try:
            await _wait_for(try_lock, wait_s, refused)
            yield
        finally:
            _let_go(connection, key if held else None)


def _keepalives(connection: Connection, settings: dict[str, int]) -> None:
    """Set the server's keepalives for this session (ignored on a Unix socket)."""
    for name, seconds in settings.items():
        connection.execute(
            text("SELECT set_config(:name, :value, false)"), {"name": name, "value": str(seconds)}
        )


def _let_go(connection: Connection, key: int | None) -> None:
    """Unlock ``key`` (when held) and give the session its default keepalives back before the pool takes it.

    A connection lost while the lock was held took the lock with it: nothing is left to let go, and
    the work the lock guarded is done, so that is not an error here.
    """
    try:
        if key is not None:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        _keepalives(connection, dict.fromkeys(PG_KEEPALIVES, 0))  # 0: the system's default
    except exc.DBAPIError:
        connection.invalidate()  # never back into the pool
