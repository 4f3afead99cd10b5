"""The shared ledger on a real PostgreSQL server: one schema per run folder, restarts, refused passwords, the cluster.

Everything here talks to the session's private cluster (``tests/support/postgres.py``) over loopback
TCP with a scram-sha-256 password; the restart tests stop and start that server for real.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.postgres import PostgresServer
from vqa_distill.errors import ConfigError, FatalRunError, LedgerUnavailable
from vqa_distill.ops.postgres import check_reachable, database_url, init_cluster
from vqa_distill.teacher.ledger import records as ledger_module
from vqa_distill.teacher.ledger.records import (
    LEDGER_URL_ENV,
    STATUS_ANSWERED,
    STATUS_FAILED,
    Ledger,
    TeacherRecord,
)
from vqa_distill.teacher.ledger.store import schema_for


def _record(key: str, status: str = STATUS_ANSWERED) -> TeacherRecord:
    return TeacherRecord(key=key, status=status, image_path="/i/a.png", rel_path="a.png", sha256="s", prompt="p",
                         system=None, model="m", params={}, answer="yes" if status == STATUS_ANSWERED else None)  # fmt: skip


def test_run_folders_sharing_a_database_do_not_see_each_others_records(tmp_path: Path, postgres_url: str) -> None:
    first, second = tmp_path / "night-1", tmp_path / "night-2"
    with Ledger(first, postgres_url) as one, Ledger(second, postgres_url) as two:
        one.record(_record("k1"))
        two.record(_record("k1", STATUS_FAILED))  # the same key, another folder: its own row
        two.record(_record("k2"))
        assert one.done_keys() == {"k1"} and two.done_keys() == {"k2"}
        assert [r.status for r in two.records()] == [STATUS_FAILED, STATUS_ANSWERED]
    assert schema_for(first) != schema_for(second) and schema_for(first) == schema_for(tmp_path / "x" / ".." / "night-1")
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            runs = dict(connection.execute(text("SELECT schema_name, path FROM public.runs")).all())
    finally:
        engine.dispose()
    assert runs[schema_for(first)] == str(first.resolve()) and runs[schema_for(second)] == str(second.resolve())


def test_the_environment_names_the_database(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEDGER_URL_ENV, postgres_url)
    with Ledger(tmp_path / "run") as ledger:
        ledger.record(_record("k"))
        assert "postgresql" in repr(ledger) and not ledger.path.exists()
    monkeypatch.delenv(LEDGER_URL_ENV)
    with Ledger(tmp_path / "run") as local:
        assert local.done_keys() == set()  # without the variable: the folder's own file, empty


def test_a_restart_between_two_records_costs_no_error(tmp_path: Path, postgres_server: PostgresServer) -> None:
    with Ledger(tmp_path / "run", postgres_server.url()) as ledger:
        assert ledger.record(_record("before"))
        postgres_server.restart()
        assert ledger.record(_record("after"))
        assert ledger.done_keys() == {"before", "after"}


def test_an_answer_is_recorded_once_the_database_is_back_not_lost_to_a_retry(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """An answer is paid for: record() waits for a database that went away instead of failing the task.

    A failed record would fail the ask-teacher task, and its retry would ask (and pay) again.
    """
    with Ledger(tmp_path / "run", postgres_server.url()) as ledger:
        ledger.record(_record("first"))
        postgres_server.stop()
        back = threading.Timer(3.0, postgres_server.start)
        back.start()
        try:
            started = time.monotonic()
            assert ledger.record(_record("paid"))  # waits through the outage, then stores it
            assert time.monotonic() - started >= 2.5
        finally:
            back.join()
        assert ledger.done_keys() == {"first", "paid"}


def test_a_server_down_mid_run_is_a_transient_error_without_the_password(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "RECORD_PATIENCE_S", 0.0)  # give up at once: the error itself is tested
    with Ledger(tmp_path / "run", postgres_server.url()) as ledger:
        ledger.record(_record("k1"))
        postgres_server.stop()
        try:
            for call in (lambda: ledger.record(_record("k2")), ledger.done_keys, lambda: ledger.get("k1")):
                with pytest.raises(LedgerUnavailable) as caught:
                    call()
                shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + repr(ledger)
                assert postgres_server.password not in shown
                assert f"127.0.0.1:{postgres_server.port}" in str(caught.value)
        finally:
            postgres_server.start()
        assert ledger.record(_record("k2")) and ledger.done_keys() == {"k1", "k2"}


def test_a_wrong_password_is_one_plain_line_naming_the_server(tmp_path: Path, postgres_server: PostgresServer) -> None:
    wrong = "not-the-password-" + postgres_server.password[:4]
    with pytest.raises(ConfigError) as caught:
        Ledger(tmp_path / "run", postgres_server.url(password=wrong))
    message = str(caught.value)
    assert "\n" not in message and f"127.0.0.1:{postgres_server.port}" in message
    assert "password authentication failed" in message
    assert wrong not in "".join(traceback.format_exception(caught.value)) and wrong not in repr(caught.value)


def test_an_unreachable_server_stops_the_run_clearly(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = database_url("postgres", "pw", "127.0.0.1", 1, "ledger_test")  # nothing listens on port 1
    with pytest.raises(FatalRunError, match=r"cannot open the ledger at .*127\.0\.0\.1:1/ledger_test"):
        Ledger(tmp_path / "run", url)


def test_the_cluster_trusts_nobody_and_is_kept_when_initialised_again(postgres_server: PostgresServer) -> None:
    hba = [line.split() for line in (postgres_server.data_dir / "pg_hba.conf").read_text().splitlines()]
    methods = {fields[-1] for fields in hba if fields and not fields[0].startswith("#")}
    assert "trust" not in methods and methods <= {"peer", "scram-sha-256"}
    hosts = [fields for fields in hba if fields and fields[0] == "host"]
    assert hosts and all(fields[3] in ("127.0.0.1/32", "::1/128") for fields in hosts)  # loopback only
    before = (postgres_server.data_dir / "PG_VERSION").stat().st_mtime_ns
    init_cluster(postgres_server.data_dir, "another password")  # an existing cluster is kept as it is
    assert (postgres_server.data_dir / "PG_VERSION").stat().st_mtime_ns == before
    assert not list(Path("/tmp").glob("vqa-distill-pw-*"))  # the password file is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_a_data_folder_the_postgres_user_cannot_reach_is_refused_clearly(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="cannot enter"):
        check_reachable(closed / "data")
    with pytest.raises(ConfigError, match="cannot enter"):
        init_cluster(closed / "data", "pw")


def test_the_batch_lock_of_a_shared_ledger_is_held_in_the_database(tmp_path: Path, postgres_url: str) -> None:
    import asyncio

    from vqa_distill.teacher.batch.book import run_folder_lock

    async def scenario() -> None:
        async with run_folder_lock(tmp_path / "a", url=postgres_url):
            with pytest.raises(FatalRunError, match="another submit or collect holds the lock of"):
                async with run_folder_lock(tmp_path / "a", timeout_s=0.5, url=postgres_url):
                    pass
            async with run_folder_lock(tmp_path / "b", timeout_s=0.5, url=postgres_url):
                pass  # another folder: another lock
        async with run_folder_lock(tmp_path / "a", timeout_s=0.5, url=postgres_url):
            pass  # released on exit
        assert not (tmp_path / "a" / "batches.lock").exists()  # no file lock: machines may not share one

    asyncio.run(scenario())
