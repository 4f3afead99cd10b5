"""Recording from the event loop: a database that went away is waited for without blocking, then spooled.

The store is the run folder's SQLite file; its writes are made to fail the way a lost PostgreSQL
connection does (LedgerUnavailable), for as many tries as a test says (``_away``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from vqa_distill.errors import LedgerUnavailable
from vqa_distill.teacher.ledger import records as records_module
from vqa_distill.teacher.ledger.records import (
    LEDGER_URL_ENV,
    STATUS_ANSWERED,
    STATUS_FAILED,
    Ledger,
    TeacherRecord,
)
from vqa_distill.teacher.ledger.spool import SPOOL_DIR, Spool
from vqa_distill.teacher.run_log import run_logger

TICK_S = 0.005


@pytest.fixture(autouse=True)
def _quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    run_logger()  # imports Prefect's logging once, before any loop is timed (a flow has it imported already)
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    monkeypatch.setattr(records_module, "RECORD_FIRST_DELAY_S", 0.02)
    monkeypatch.setattr(records_module, "RECORD_MAX_DELAY_S", 0.05)


def _record(key: str, status: str = STATUS_ANSWERED, answer: str | None = "yes") -> TeacherRecord:
    return TeacherRecord(key=key, status=status, image_path=f"/i/{key}.png", rel_path=f"{key}.png", sha256="s",
                         prompt="p", system=None, model="m", params={"max_tokens": 9}, answer=answer)  # fmt: skip


class _Away:
    """Makes a ledger's writes fail as a lost connection does while ``down`` is set; counts the tries."""

    def __init__(self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch):
        self.down = True
        self.tries = 0
        for name in ("write_one", "write"):
            monkeypatch.setattr(ledger.store, name, self._guarded(getattr(ledger.store, name), ledger.store.where))

    def _guarded(self, real: contextlib.AbstractContextManager[Connection] | object, where: str) -> object:
        @contextlib.contextmanager
        def guarded() -> Iterator[Connection]:
            self.tries += 1
            if self.down:
                time.sleep(0.002)  # a refused connection costs a moment, in the worker thread
                raise LedgerUnavailable(f"the ledger at {where} is unavailable: restarting")
            with real() as connection:  # type: ignore[operator]
                yield connection

        return guarded


async def _worst_lag_while(work: asyncio.Future[Any]) -> float:
    """Return the worst delay of a coroutine sleeping ``TICK_S`` at a time while ``work`` runs."""
    worst = 0.0
    while not work.done():
        started = time.monotonic()
        await asyncio.sleep(TICK_S)
        worst = max(worst, time.monotonic() - started - TICK_S)
    return worst


def test_a_short_outage_is_waited_for_off_the_loop_then_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "RECORD_PATIENCE_S", 5.0)
    with Ledger(tmp_path / "run") as ledger:
        away = _Away(ledger, monkeypatch)

        async def scenario() -> tuple[bool, float]:
            asyncio.get_running_loop().call_later(0.3, setattr, away, "down", False)
            work = asyncio.ensure_future(ledger.record_async(_record("paid")))
            worst = await _worst_lag_while(work)
            return await work, worst

        stored, worst_lag_s = asyncio.run(scenario())
        assert stored is True and ledger.done_keys() == {"paid"} and away.tries > 2
        assert worst_lag_s < 0.1, f"the loop stalled {worst_lag_s:.3f} s"
        assert not Spool(ledger.out_dir).files()


def test_an_outage_past_the_wait_spools_the_answer_which_counts_as_done_and_is_flushed_on_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(records_module, "RECORD_PATIENCE_S", 0.2)
    with Ledger(tmp_path / "run") as ledger:
        ledger.record(_record("before"))
        away = _Away(ledger, monkeypatch)

        async def during_the_outage() -> tuple[list[bool], float]:
            work = asyncio.ensure_future(asyncio.gather(
                ledger.record_async(_record("paid-1")), ledger.record_async(_record("paid-2")),
                ledger.record_async(_record("refused", STATUS_FAILED, None)),
            ))  # fmt: skip
            worst = await _worst_lag_while(work)
            return list(await work), worst

        with caplog.at_level(logging.WARNING):
            results, worst_lag_s = asyncio.run(during_the_outage())
        assert results == [True, True, True] and worst_lag_s < 0.1
        spooled = Spool(ledger.out_dir).files()
        assert len(spooled) == 3 and all(path.parent == tmp_path / "run" / SPOOL_DIR for path in spooled)
        assert {json.loads(path.read_text())["key"] for path in spooled} == {"paid-1", "paid-2", "refused"}
        kept = [r.getMessage() for r in caplog.records if "is kept in" in r.getMessage()]
        assert len(kept) == 3 and all("written to the ledger when it is back" in m for m in kept)
        assert ledger.done_keys() == {"before", "paid-1", "paid-2"}  # spooled answers are never asked again
        assert ledger.keys_with_status(STATUS_ANSWERED) == {"before"}  # ... though not in the database yet

        away.down = False
        assert asyncio.run(ledger.record_async(_record("after"))) is True  # the database is back: all go in
        assert not Spool(ledger.out_dir).files()
        assert ledger.keys_with_status(STATUS_ANSWERED) == {"before", "paid-1", "paid-2", "after"}
        assert ledger.keys_with_status(STATUS_FAILED) == {"refused"}
        stored = ledger.get("paid-1")
        assert stored is not None and stored.answer == "yes" and stored.params == {"max_tokens": 9}


def test_a_flush_keeps_the_files_when_the_database_is_still_away_and_never_replaces_an_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_module, "RECORD_PATIENCE_S", 0.0)
    with Ledger(tmp_path / "run") as ledger:
        ledger.record(_record("k", answer="the first answer"))
        away = _Away(ledger, monkeypatch)
        asyncio.run(ledger.record_async(_record("k", answer="a second answer")))  # e.g. another process's copy
        asyncio.run(ledger.record_async(_record("late", STATUS_FAILED, None)))
        with pytest.raises(LedgerUnavailable):
            ledger.flush_spool()
        assert len(Spool(ledger.out_dir).files()) == 2  # nothing committed: nothing removed
        away.down = False
        assert ledger.flush_spool() == 2 and not Spool(ledger.out_dir).files()
        assert ledger.flush_spool() == 0
        kept = ledger.get("k")
        assert kept is not None and kept.answer == "the first answer"  # an answer is never replaced
        assert ledger.keys_with_status(STATUS_FAILED) == {"late"}


def test_another_processs_spool_is_flushed_by_the_next_plan(tmp_path: Path) -> None:
    from tests.support.helpers import make_images
    from vqa_distill.teacher.params import TeacherParams
    from vqa_distill.teacher.run.plan import plan_run

    make_images(tmp_path / "images", 2)
    params = TeacherParams(images=str(tmp_path / "images"), out=str(tmp_path / "run"), prompts=["Q?"])
    with Ledger(tmp_path / "run") as ledger:
        first = plan_run(params, ledger)
        paid = _record(first.to_ask[0].key)
        Spool(tmp_path / "run").put(paid.to_json())  # a shard on another machine spooled it, then stopped
        again = plan_run(params, ledger)
        assert again.already_answered == 1 and [r.key for r in again.to_ask] == [first.to_ask[1].key]
        assert ledger.keys_with_status(STATUS_ANSWERED) == {paid.key} and not Spool(ledger.out_dir).files()
