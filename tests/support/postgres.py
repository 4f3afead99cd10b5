"""A real PostgreSQL server for the ledger tests: one private cluster per session, on a free loopback port.

The cluster is the project's own (``vqa_distill/ops/postgres.py``): initdb with a random superuser
password, scram-sha-256 over TCP, started through the supervisor and stopped at the end. Tests skip
only when PostgreSQL is not installed (CI installs it). Registered once in tests/conftest.py
(``pytest_plugins``): every module asking for ``postgres_url`` or ``postgres_server`` shares the cluster.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vqa_distill.errors import ConfigError
from vqa_distill.ops.postgres import (
    create_database,
    database_url,
    find_postgres_bin,
    init_cluster,
    start_postgres,
)
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.supervisor import ManagedProcess, stop_process

TEST_DATABASE = "ledger_test"
HOST = "127.0.0.1"


@dataclass
class PostgresServer:
    """A running test cluster: where it listens, its superuser password, and how to restart it."""

    data_dir: Path
    logs: Path
    port: int
    password: str
    process: ManagedProcess

    def url(self, db: str = TEST_DATABASE, password: str | None = None) -> str:
        """The URL of a database of this server (``password`` overrides the real one, for failure tests)."""
        return database_url("postgres", self.password if password is None else password, HOST, self.port, db)

    def stop(self) -> None:
        """Stop the server (its clients see their connections drop)."""
        stop_process(self.process)

    def start(self) -> None:
        """Start the server again on the same data and port."""
        self.process = start_postgres(self.data_dir, self.port, self.logs)

    def restart(self) -> None:
        """Stop and start the server: every open connection is lost, the data stays."""
        self.stop()
        self.start()


_shared: dict[str, object] = {"server": None, "users": 0}


def _start() -> PostgresServer:
    try:
        find_postgres_bin()
    except ConfigError as error:
        pytest.skip(str(error))
    root = Path(tempfile.mkdtemp(prefix="vqa-distill-pg-"))
    root.chmod(0o755)  # the postgres OS user must be able to enter it
    password = secrets.token_urlsafe(16) + "@/:%"  # characters a URL must escape
    init_cluster(root / "data", password)
    port = free_port()
    server = PostgresServer(root / "data", root / "logs", port, password, start_postgres(root / "data", port, root / "logs"))
    create_database(server.url("postgres"), TEST_DATABASE)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the whole session (shared by every module importing this fixture); stopped at the end."""
    if _shared["server"] is None:
        _shared["server"] = _start()
    _shared["users"] = int(_shared["users"]) + 1  # type: ignore[call-overload]
    server = _shared["server"]
    assert isinstance(server, PostgresServer)
    try:
        yield server
    finally:
        _shared["users"] = int(_shared["users"]) - 1  # type: ignore[call-overload]
        if _shared["users"] == 0:
            server.stop()
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)
            _shared["server"] = None


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL (``postgresql+psycopg://postgres:<random>@127.0.0.1:<port>/ledger_test``) of the session's database."""
    return postgres_server.url()
