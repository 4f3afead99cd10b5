"""The shard lock on a SQLite ledger, in one process: one run of a (parent run, shard) at a time.

``flock`` belongs to an open file, so two holders in one process conflict as two processes do; the
two-process runs (a holder killed, PostgreSQL's advisory lock) are tests/integration/test_shard_lock.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.shards.lock import shard_lock, shard_lock_file, shard_lock_key

PARENT = "6f1c2a9e-0d4b-4c59-9b1e-3f0f1d2a7c11"


async def test_a_second_run_of_a_shard_waits_then_refuses_and_others_go_on(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as ledger:
        async with shard_lock(ledger, PARENT, 2):
            started = time.monotonic()
            with pytest.raises(FatalRunError, match=rf"shard 3 of run {PARENT} is still being asked elsewhere: .*"
                                                     rf"{PARENT}-2\.lock \(waited 0 s\)"):  # fmt: skip
                async with shard_lock(ledger, PARENT, 2, wait_s=0.4):
                    pass
            assert time.monotonic() - started >= 0.4  # it waited for the holder first
            async with shard_lock(ledger, PARENT, 1, wait_s=0.1):
                pass  # another shard of the same run
            async with shard_lock(ledger, "another-parent", 2, wait_s=0.1):
                pass  # the same shard of another run
        async with shard_lock(ledger, PARENT, 2, wait_s=0.1):
            pass  # let go on exit: taken at once
    assert shard_lock_file(tmp_path / "run", PARENT, 2).is_file()


async def test_a_second_run_takes_the_shard_once_the_first_lets_go(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as ledger:
        first_done = asyncio.Event()

        async def first() -> None:
            async with shard_lock(ledger, PARENT, 0):
                await asyncio.sleep(0.5)
            first_done.set()

        holder = asyncio.create_task(first())
        await asyncio.sleep(0.1)
        async with shard_lock(ledger, PARENT, 0, wait_s=30):
            assert first_done.is_set()  # not before the first one ended
        await holder


def test_lock_names_are_per_folder_run_and_shard() -> None:
    keys = {shard_lock_key(schema, parent, index) for schema in ("run_a", "run_b")
            for parent in (PARENT, "p2") for index in (0, 1, 10)}  # fmt: skip
    assert len(keys) == 12 and all(-(2**63) <= key < 2**63 for key in keys)
    assert shard_lock_file("/runs/x", "odd/../name", 1) == Path("/runs/x/shard-locks/odd_.._name-1.lock")
