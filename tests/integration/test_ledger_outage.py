"""A shared ledger's database down while paid answers arrive: the loop keeps running, nothing is paid twice.

The generate flow runs on this test's own event loop, beside a coroutine that measures how late the
loop wakes it (the loop's lag). The session's PostgreSQL is stopped once the teacher has seen the
first request and started again once answers have been spooled: the outage outlasts the ledger's
wait, which is shortened here to keep the test quick.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import chat_requests, make_images, params_for
from tests.support.postgres import PostgresServer
from vqa_distill.teacher.ledger import records as records_module
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, Ledger
from vqa_distill.teacher.ledger.spool import SPOOL_DIR

IMAGES = 20
CONCURRENCY = 2
TEACHER_LATENCY_S = 0.5  # 10 rounds of 2: answers keep arriving after the database is back
PATIENCE_S = 1.0  # how long a record waits for the database before it is spooled
TICK_S = 0.01  # the lag probe's sleep
WATCH_TIMEOUT_S = 60.0
MAX_OUTAGE_S = 15.0  # without a spool (or with one that never fills) the database comes back anyway


class LoopLag:
    """How late the event loop wakes a coroutine that sleeps ``TICK_S`` at a time, sample by sample."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (when it woke, monotonic; how late, s)

    async def watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(TICK_S)
            woke = time.monotonic()
            self.samples.append((woke, woke - started - TICK_S))

    def worst_between(self, start: float, end: float) -> float:
        """The worst lag of the samples taken from ``start`` to ``end``."""
        return max(late for woke, late in self.samples if start <= woke <= end)


def _outage(teacher: Any, server: PostgresServer, spool: Path, seen: dict[str, float]) -> None:
    """Stop the database at the first request, start it again once answers were spooled; note when."""
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    while not chat_requests(teacher.stats()) and time.monotonic() < deadline:
        time.sleep(0.02)
    seen["down_at"] = time.monotonic()
    server.stop()
    try:
        while len(list(spool.glob("*.jsonl"))) < CONCURRENCY and time.monotonic() < seen["down_at"] + MAX_OUTAGE_S:
            time.sleep(0.02)
    finally:
        seen["spooled"] = len(list(spool.glob("*.jsonl")))
        server.start()
        seen["up_at"] = time.monotonic()


def test_an_outage_longer_than_the_wait_spools_answers_without_stalling_or_paying_twice(
    tmp_path: Path, teacher: Any, api_key_env: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.generate import generate

    monkeypatch.setenv(LEDGER_URL_ENV, postgres_server.url())
    monkeypatch.setattr(records_module, "RECORD_PATIENCE_S", PATIENCE_S)
    monkeypatch.setattr(records_module, "RECORD_FIRST_DELAY_S", 0.05)
    monkeypatch.setattr(records_module, "RECORD_MAX_DELAY_S", 0.25)
    make_images(tmp_path / "images", IMAGES)
    teacher.set_latency(TEACHER_LATENCY_S)
    params = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url, concurrency=CONCURRENCY)
    seen: dict[str, float] = {}
    outage = threading.Thread(target=_outage, args=(teacher, postgres_server, tmp_path / "out" / SPOOL_DIR, seen))

    async def run() -> Any:
        probe = asyncio.create_task(lag.watch())
        try:
            return await generate(params, return_state=True)
        finally:
            probe.cancel()

    lag = LoopLag()
    outage.start()
    try:
        state = asyncio.run(run())
    finally:
        outage.join()
    worst_lag_s = lag.worst_between(seen["down_at"], seen["up_at"])
    print(f"worst loop lag while the database was down ({seen['up_at'] - seen['down_at']:.1f} s): "
          f"{worst_lag_s * 1000:.0f} ms; over the whole run {max(late for _, late in lag.samples) * 1000:.0f} ms; "
          f"{seen['spooled']:.0f} outcomes spooled")  # fmt: skip

    assert seen["spooled"] >= CONCURRENCY, "the outage did not outlast the wait: nothing was spooled"
    assert state.is_completed(), state.message
    assert worst_lag_s < PATIENCE_S / 4, f"the loop stalled for {worst_lag_s:.2f} s"  # (a) waited asynchronously
    asked = Counter(tuple(request["fingerprints"]) for request in chat_requests(teacher.stats()))
    assert len(asked) == IMAGES and set(asked.values()) == {1}, asked  # (b) every image asked once
    with Ledger(tmp_path / "out", postgres_server.url()) as ledger:
        records = list(ledger.records())
    assert len(records) == IMAGES and {r.status for r in records} == {"answered"}  # (c) all in the ledger
    assert {r.attempts for r in records} == {1}  # no task run was retried
    assert not list((tmp_path / "out" / SPOOL_DIR).glob("*.jsonl"))  # and the spool is empty
