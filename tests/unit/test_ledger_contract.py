"""The ledger's contract (tests/support/ledger_contract.py) on the run folder's SQLite file.

The same contract on a real PostgreSQL schema, and two processes racing on either store, are in
tests/integration/test_ledger_contract.py.
"""

from __future__ import annotations

import pytest

from tests.support.ledger_contract import LedgerContract
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV


class TestSqliteLedger(LedgerContract):
    """The contract on the folder's SQLite file."""

    @pytest.fixture
    def url(self, monkeypatch: pytest.MonkeyPatch) -> str | None:
        """No URL (and none in the environment): the folder's SQLite file."""
        monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
        return None
