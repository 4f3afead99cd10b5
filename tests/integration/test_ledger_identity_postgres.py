"""A sharded run's one-ledger proof on a real PostgreSQL: a run folder's schema, and a worker's other schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger import Ledger, check_shared_ledger, mark_shared_ledger
from vqa_distill.teacher.ledger.store import schema_for


def test_a_shard_finds_the_parents_mark_in_the_shared_schema_and_not_in_another(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url()
    with Ledger(tmp_path / "run", url) as parent:
        mark = mark_shared_ledger(parent, "parent-run")
    assert mark.location == f"postgresql://127.0.0.1:{postgres_server.port}/ledger_test#{schema_for(tmp_path / 'run')}"
    assert postgres_server.password not in mark.model_dump_json()
    with Ledger(tmp_path / "run", url) as shard:
        assert check_shared_ledger(shard, mark) == mark.location
    with Ledger(tmp_path / "mounted elsewhere" / "run", url) as shard, pytest.raises(FatalRunError) as caught:
        check_shared_ledger(shard, mark)  # the run folder at another path on the worker: another schema
    message = str(caught.value)
    assert "\n" not in message and mark.location in message and shard.store.location in message
    assert postgres_server.password not in message
