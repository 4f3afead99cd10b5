"""The ledger's contract on a real PostgreSQL schema, and two processes writing the same keys on either store.

What every caller relies on (tests/support/ledger_contract.py; its SQLite run is a unit test,
tests/unit/test_ledger_contract.py), here on the session's PostgreSQL cluster; and two processes
writing the same key leave one row, the answer, on the run folder's SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.helpers import REPO_ROOT
from tests.support.ledger_contract import LedgerContract
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, STATUS_ANSWERED, STATUS_FAILED, Ledger


class TestPostgresLedger(LedgerContract):
    """The contract on the session's PostgreSQL database."""

    @pytest.fixture
    def url(self, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> str | None:
        """The session's PostgreSQL database (and no URL in the environment)."""
        monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
        return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The store under test: None (the folder's SQLite file) or the session's PostgreSQL database."""
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
    out, url, status, start = sys.argv[1], sys.argv[2] or None, sys.argv[3], float(sys.argv[4])
    with Ledger(out, url) as ledger:
        while time.time() < start:
            time.sleep(0.005)
        for i in range(200):
            ledger.record(TeacherRecord(key=f"k{i:03d}", status=status, image_path="/i/x.png", rel_path="x.png",
                sha256="s", prompt="p", system=None, model="m", params={},
                answer="yes" if status == "answered" else None, error_message=None if status == "answered" else "503"))
    """
)


def test_two_processes_writing_the_same_keys_leave_one_row_each_the_answer(tmp_path: Path, url: str | None) -> None:
    out = tmp_path / "shared-run"
    with Ledger(out, url):
        pass  # the tables exist before the race: it is about the records
    import time

    start = time.time() + 3.0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(out), url or "", status, str(start)], env=env)
        for status in (STATUS_FAILED, STATUS_ANSWERED)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    with Ledger(out, url) as ledger:
        records = list(ledger.records())
    assert len(records) == 200 and len({r.key for r in records}) == 200
    assert {r.status for r in records} == {STATUS_ANSWERED}
