"""What the ledger waits for, on its SQLite file: a database that went away, the run folder's lock; and which store a URL names."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from vqa_distill.errors import ConfigError, FatalRunError, LedgerUnavailable
from vqa_distill.teacher.batch.book import run_folder_lock
from vqa_distill.teacher.ledger import records as records_module
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, STATUS_ANSWERED, Ledger, TeacherRecord
from vqa_distill.teacher.ledger.store import is_sqlite, sqlite_url


@pytest.fixture(autouse=True)
def _folder_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)


def _record(key: str) -> TeacherRecord:
    return TeacherRecord(key=key, status=STATUS_ANSWERED, image_path=f"/i/{key}.png", rel_path=f"{key}.png", sha256="s",
                         prompt="p", system=None, model="m", params={}, answer="yes")  # fmt: skip


def _away_for(ledger: Ledger, failures: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the ledger's store unavailable for its next ``failures`` writes; return the count of writes tried."""
    real = ledger.store.write_one
    tried = [0]

    @contextlib.contextmanager
    def write_one() -> Iterator[Connection]:
        tried[0] += 1
        if tried[0] <= failures:
            raise LedgerUnavailable(f"the ledger at {ledger.store.where} is unavailable: restarting")
        with real() as connection:
            yield connection

    monkeypatch.setattr(ledger.store, "write_one", write_one)
    return tried


def test_record_waits_for_a_database_that_went_away_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(records_module, "RECORD_FIRST_DELAY_S", 0.01)
    with Ledger(tmp_path / "run") as ledger:
        tried = _away_for(ledger, 2, monkeypatch)
        with caplog.at_level(logging.WARNING, logger=records_module.__name__):
            assert ledger.record(_record("paid")) is True
        assert tried == [3] and ledger.done_keys() == {"paid"}
    warnings = [r.getMessage() for r in caplog.records if r.name == records_module.__name__]
    assert len(warnings) == 2 and all("restarting; recording paid.png again in" in m for m in warnings)


def test_record_gives_the_stores_error_back_once_patience_runs_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "RECORD_PATIENCE_S", 0.0)
    with Ledger(tmp_path / "run") as ledger:
        tried = _away_for(ledger, 1, monkeypatch)
        with pytest.raises(LedgerUnavailable, match="unavailable: restarting"):
            ledger.record(_record("k"))
        assert tried == [1]


def test_the_store_tells_sqlite_from_postgresql(tmp_path: Path) -> None:
    assert is_sqlite(sqlite_url(tmp_path / "ledger.sqlite"))
    assert not is_sqlite("postgresql+psycopg://ledger:pw@db.lan:5432/runs")
    with pytest.raises(ConfigError, match=r"not mysql://ledger:\*\*\*@db\.lan/runs"):
        is_sqlite("mysql://ledger:secret@db.lan/runs")
    with Ledger(tmp_path / "run") as ledger:
        assert ledger.store.is_sqlite and ledger.store.schema is None


async def test_a_held_folder_lock_is_waited_for_then_refused(tmp_path: Path) -> None:
    async with run_folder_lock(tmp_path):
        with pytest.raises(FatalRunError, match=r"another submit or collect holds .*batches\.lock \(waited 0 s\)"):
            async with run_folder_lock(tmp_path, timeout_s=0.3):
                pass
    async with run_folder_lock(tmp_path, timeout_s=0.3):  # released: taken at once
        pass
