"""Two processes running one shard: the second waits, refuses while the first is alive, and takes over
once it is killed, on the run folder's SQLite file (flock) and on PostgreSQL (a session advisory lock).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import REPO_ROOT
from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, Ledger
from vqa_distill.teacher.shards.lock import shard_lock

PARENT = "0b6c1f52-7e0a-4f3e-a8d2-5c9e21b4d7aa"
HOLDER_READY_S = 60.0  # a cold interpreter importing SQLAlchemy and Prefect's pieces on a busy machine
TAKEN_WITHIN_S = 10.0  # a killed holder's lock is free at once (its file closed, its socket reset)

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from vqa_distill.teacher.ledger.records import Ledger
    from vqa_distill.teacher.shards.lock import shard_lock

    async def main(out, url, parent, index):
        with Ledger(out, url) as ledger:
            async with shard_lock(ledger, parent, index, wait_s=1):
                print("held", flush=True)
                await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4])))
    """
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The ledger under test: None (the folder's SQLite file) or the session's PostgreSQL database."""
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def holder(tmp_path: Path, url: str | None) -> Iterator[subprocess.Popen[str]]:
    """Another process running shard 2 of PARENT: it holds the lock until it is killed."""
    with Ledger(tmp_path / "run", url):
        pass  # the ledger exists before the two race for the lock
    env = {k: v for k, v in os.environ.items() if k != LEDGER_URL_ENV}
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "run"), url or "", PARENT, "2"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = threading.Timer(HOLDER_READY_S, process.kill)
        ready.start()
        line = process.stdout.readline()
        ready.cancel()
        assert line.strip() == "held", f"the holder did not take the lock (exit {process.poll()})"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_process_waits_refuses_then_takes_the_shard_once_the_holder_dies(
    tmp_path: Path, url: str | None, holder: subprocess.Popen[str]
) -> None:
    async def scenario() -> None:
        with Ledger(tmp_path / "run", url) as ledger:
            started = time.monotonic()
            with pytest.raises(FatalRunError, match=f"shard 3 of run {PARENT} is still being asked elsewhere"):
                async with shard_lock(ledger, PARENT, 2, wait_s=1.0):
                    pass
            assert time.monotonic() - started >= 1.0
            async with shard_lock(ledger, PARENT, 1, wait_s=1.0):
                pass  # another shard of the same parent is free

            started = time.monotonic()
            threading.Timer(0.5, os.kill, (holder.pid, signal.SIGKILL)).start()  # the original dies meanwhile
            async with shard_lock(ledger, PARENT, 2, wait_s=60):
                waited = time.monotonic() - started
            assert holder.wait(timeout=5) == -signal.SIGKILL
            assert 0.5 <= waited <= 0.5 + TAKEN_WITHIN_S  # it waited for the holder, then took over

    asyncio.run(scenario())
