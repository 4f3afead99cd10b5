"""One run of a shard at a time: a lock per (parent run, shard index), on the ledger's own storage.

The parent starts a shard again when Prefect marks it Crashed, but the original may still be alive: a
worker cut off from the Prefect server, an event loop stalled past its heartbeats. Both would then ask
the same keys and pay for them twice. So a shard run holds this lock from before it plans until it
ends. A second run of the same shard waits for the holder to go away (a killed process lets go at once,
a dead machine's database session within about a minute, ``ledger/locks.py``) and, when it is still
there after ``SHARD_LOCK_WAIT_S``, refuses with a FatalRunError that names the shard.

A SQLite ledger (one machine): ``flock`` on ``<run folder>/shard-locks/<parent run>-<shard>.lock``.
A PostgreSQL ledger (workers on many machines): a session advisory lock whose key is hashed from the
folder's schema, the parent run and the shard index.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger.locks import advisory_lock, file_lock, lock_key
from vqa_distill.teacher.ledger.records import Ledger

# Seconds a second run of a shard waits for the holder: past a dead holder's release (about 60 s),
# short of the 9 minutes of missed heartbeats after which a stalled one is marked Crashed.
SHARD_LOCK_WAIT_S = 300.0
LOCK_FOLDER = "shard-locks"  # in the run folder; the files stay (a waiter may hold one open)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def shard_lock_file(out: str | Path, parent_run_id: str, shard_index: int) -> Path:
    """Return the lock file of one shard of a parent run in a SQLite ledger's run folder."""
    return Path(out) / LOCK_FOLDER / f"{_UNSAFE.sub('_', parent_run_id)}-{shard_index}.lock"


def shard_lock_key(schema: str, parent_run_id: str, shard_index: int) -> int:
    """Return the PostgreSQL advisory lock key of one shard of a parent run in one run folder's schema."""
    return lock_key("teacher-shard", schema, parent_run_id, str(shard_index))


@contextlib.asynccontextmanager
async def shard_lock(
    ledger: Ledger, parent_run_id: str, shard_index: int, *, wait_s: float = SHARD_LOCK_WAIT_S
) -> AsyncIterator[None]:
    """Hold the lock of shard ``shard_index`` of ``parent_run_id``; FatalRunError when another run keeps it."""

    def refused(what: str) -> FatalRunError:
        return FatalRunError(
            f"shard {shard_index + 1} of run {parent_run_id} is still being asked elsewhere: another run of it "
            f"holds {what} (waited {wait_s:.0f} s); not asking its requests twice"
        )

    store = ledger.store
    if store.schema is None:  # a SQLite file: one machine
        path = shard_lock_file(ledger.out_dir, parent_run_id, shard_index)
        async with file_lock(path, wait_s=wait_s, refused=lambda: refused(str(path))):
            yield
        return
    key = shard_lock_key(store.schema, parent_run_id, shard_index)
    where = f"its lock in {store.where}"
    async with advisory_lock(store, key, wait_s=wait_s, refused=lambda: refused(where)):
        yield
