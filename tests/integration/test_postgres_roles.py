"""The team's PostgreSQL, started as ``stack up --postgres`` starts it: a worker's password opens the ledger and
nothing else, Prefect's role opens Prefect's database and nothing else, and the superuser's password is refused
from any address but loopback."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
from sqlalchemy import make_url

from vqa_distill.errors import ConfigError
from vqa_distill.ops.postgres import database_url, find_postgres_bin
from vqa_distill.ops.postgres_access import grant_databases
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.stack_secrets import StackSecrets, load_secrets
from vqa_distill.ops.stack_state import StackState
from vqa_distill.ops.team import ServiceEnv, TeamOptions, postgres_grants, start_postgres_service
from vqa_distill.paths import LOOPBACK
from vqa_distill.supervisor import stop_process
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, STATUS_ANSWERED, Ledger, TeacherRecord

DENIED_DATABASE = "permission denied for database"
NO_HBA_ENTRY = "no pg_hba.conf entry"


@dataclass
class TeamPostgres:
    home: Path
    port: int
    secrets: StackSecrets
    services: ServiceEnv

    def connect(self, url: str, host: str | None = None, database: str | None = None) -> psycopg.Connection:
        """Open a connection with a URL's user and password (to another host or database when given)."""
        parts = make_url(url)
        return psycopg.connect(
            host=host or parts.host, port=self.port, user=parts.username, password=parts.password,
            dbname=database or parts.database, connect_timeout=10, autocommit=True,
        )  # fmt: skip

    @property
    def superuser(self) -> str:
        return database_url("postgres", self.secrets.postgres_password, LOOPBACK, self.port, "postgres")

    @property
    def ledger(self) -> str:
        return self.services.workers[LEDGER_URL_ENV]

    @property
    def prefect(self) -> str:
        return self.services.server["PREFECT_API_DATABASE_CONNECTION_URL"].replace("+asyncpg", "+psycopg", 1)


@pytest.fixture(scope="module")
def team_postgres() -> Iterator[TeamPostgres]:
    """The stack's own start of PostgreSQL in a fresh home, listening on every address; stopped afterwards."""
    try:
        find_postgres_bin()
    except ConfigError as error:  # not installed here
        pytest.skip(str(error))
    home = Path(tempfile.mkdtemp(prefix="vqa-distill-roles-"))
    home.chmod(0o755)  # the postgres OS user must reach its data
    state = StackState(home=str(home), port=0, api_url="", ui_url="", env={})
    secrets = load_secrets(home)
    port = free_port()
    try:  # a start that fails half-way has recorded what it started: stopped below all the same
        services = start_postgres_service(state, secrets, TeamOptions(postgres=True, postgres_port=port), LOOPBACK, lambda _: None)
        yield TeamPostgres(home, port, secrets, services)
    finally:
        for process in state.processes:
            stop_process(process)
        shutil.rmtree(home, ignore_errors=True)


def _record(key: str) -> TeacherRecord:
    return TeacherRecord(key=key, status=STATUS_ANSWERED, image_path="/i/a.png", rel_path="a.png", sha256="s",
                         prompt="p", system=None, model="m", params={}, answer="an answer")  # fmt: skip


def test_the_ledger_role_makes_a_run_schema_and_reaches_no_other_database(team_postgres: TeamPostgres, tmp_path: Path) -> None:
    pg = team_postgres
    assert make_url(pg.ledger).username == "vqa_ledger" and pg.secrets.postgres_password not in pg.ledger
    with Ledger(tmp_path / "run", url=pg.ledger) as ledger:  # creates its schema and tables as this role
        assert ledger.record(_record("k1"))
        assert ledger.done_keys() == {"k1"}
    for other in ("prefect", "postgres"):
        with pytest.raises(psycopg.OperationalError, match=DENIED_DATABASE):
            pg.connect(pg.ledger, database=other).close()


def test_the_prefect_role_owns_prefect_and_cannot_open_the_ledger(team_postgres: TeamPostgres) -> None:
    pg = team_postgres
    assert make_url(pg.prefect).username == "vqa_prefect"
    with pg.connect(pg.prefect) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS flow_probe (id int)")
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # Prefect's migrations make it
    with pytest.raises(psycopg.OperationalError, match=DENIED_DATABASE):
        pg.connect(pg.prefect, database="ledger").close()


def _own_address() -> str | None:
    """An IPv4 address of this machine other than loopback (a connection to it does not come from 127.0.0.1)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def test_the_superuser_is_refused_from_beyond_loopback_and_the_ledger_role_is_not(team_postgres: TeamPostgres) -> None:
    pg = team_postgres
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    with pytest.raises(psycopg.OperationalError, match=NO_HBA_ENTRY):
        pg.connect(pg.superuser, host=address).close()
    with pytest.raises(psycopg.OperationalError, match=NO_HBA_ENTRY):
        pg.connect(pg.ledger, host=address, database="prefect").close()  # a role to another database
    with pg.connect(pg.ledger, host=address) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("vqa_ledger",)
    with pg.connect(pg.superuser) as connection:  # loopback: the administrator's way in
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_what_the_superuser_made_before_the_roles_is_handed_to_the_ledger_role(team_postgres: TeamPostgres) -> None:
    pg = team_postgres
    with pg.connect(pg.superuser, database="ledger") as connection:  # a stack made before the roles existed
        connection.execute("CREATE SCHEMA IF NOT EXISTS run_old")
        connection.execute("CREATE TABLE IF NOT EXISTS run_old.records (id bigint GENERATED BY DEFAULT AS IDENTITY, key text)")
    secrets = pg.secrets
    prefect, ledger = postgres_grants()
    grant_databases(pg.superuser, [(prefect, secrets.prefect_db_password), (ledger, secrets.ledger_password)])  # the next `up`
    with pg.connect(pg.ledger) as connection:
        connection.execute("INSERT INTO run_old.records (key) VALUES ('k')")
        connection.execute("ALTER TABLE run_old.records ADD COLUMN IF NOT EXISTS answer text")
        owner = connection.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'run_old'").fetchone()
    assert owner == ("vqa_ledger",)
