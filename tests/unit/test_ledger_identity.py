"""A shard proves it shares its parent's ledger before it asks anything; the parent refuses a shard that did not.

Run folders' SQLite files stand in for the ledgers of two workers; tests/integration/test_ledger_postgres.py
checks the same on PostgreSQL schemas.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger import (
    Ledger,
    LedgerMark,
    check_shared_ledger,
    mark_shared_ledger,
    refuse_other_ledgers,
)
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV
from vqa_distill.teacher.ledger.store import location_of, sqlite_url
from vqa_distill.teacher.shards.split import ShardSummary


@pytest.fixture(autouse=True)
def _folder_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)


def test_a_shard_on_the_parents_ledger_passes_and_reports_its_location(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as parent:
        mark = mark_shared_ledger(parent, "parent-run")
        assert mark.location == f"sqlite://{(tmp_path / 'run' / 'ledger.sqlite').resolve()}"
        assert mark.location.startswith("sqlite:///") and len(mark.token) == 32
        assert mark_shared_ledger(parent, "parent-run") == mark  # a retried parent keeps its mark
        assert mark_shared_ledger(parent, "another-parent").token != mark.token
    carried = LedgerMark.model_validate(mark.model_dump(mode="json"))  # as a flow parameter carries it
    with Ledger(tmp_path / "run") as shard:
        assert check_shared_ledger(shard, carried) == mark.location
        summary = ShardSummary(shard_index=0, shards=2, flow_run_id="s", answered_now=0, cached=0, failed=0,
                               ledger_location=shard.store.location)  # fmt: skip
    refuse_other_ledgers(mark.location, {0: summary.ledger_location, 1: None})  # the same ledger: no word


def test_a_shard_on_another_ledger_stops_in_one_line_naming_both(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as parent:
        mark = mark_shared_ledger(parent, "parent-run")
    with Ledger(tmp_path / "elsewhere" / "run") as shard, pytest.raises(FatalRunError) as caught:
        check_shared_ledger(shard, mark)  # a ledger that never saw a mark: no marks table at all
    message = str(caught.value)
    assert "\n" not in message and mark.location in message and shard.store.location in message
    assert LEDGER_URL_ENV in message


def test_the_same_path_on_another_machine_is_told_by_the_token_not_the_location(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as parent:
        mark = mark_shared_ledger(parent, "parent-run")
        mark_shared_ledger(parent, "older-parent")
    shutil.rmtree(tmp_path / "run")  # another machine: its own file at the same path, with other marks
    with Ledger(tmp_path / "run") as shard:
        mark_shared_ledger(shard, "older-parent")
        assert shard.store.location == mark.location
        with pytest.raises(FatalRunError, match="the same path, another database") as caught:
            check_shared_ledger(shard, mark)
    assert "\n" not in str(caught.value) and "parent-run" in str(caught.value)


def test_the_parent_refuses_a_shard_that_reported_another_ledger_in_one_line() -> None:
    parent = "postgresql://db.lan:5432/runs#run_0123456789abcdef"
    with pytest.raises(FatalRunError) as caught:
        refuse_other_ledgers(parent, {0: parent, 1: "sqlite:///srv/runs/night/ledger.sqlite", 2: None})
    message = str(caught.value)
    assert "\n" not in message and parent in message
    assert "shard 2 at sqlite:///srv/runs/night/ledger.sqlite" in message and "shard 1 " not in message


def test_a_location_names_no_user_and_no_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:s3cret%40@db.lan/runs"
    assert location_of(url, "run_0123456789abcdef") == "postgresql://db.lan:5432/runs#run_0123456789abcdef"
    assert location_of("postgresql+psycopg://u:p@10.0.0.5:6543/ledger", "run_x") == "postgresql://10.0.0.5:6543/ledger#run_x"
    assert location_of(sqlite_url(tmp_path / "a" / ".." / "ledger.sqlite"), None) == f"sqlite://{tmp_path}/ledger.sqlite"
