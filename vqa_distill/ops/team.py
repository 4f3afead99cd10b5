"""The team stack's services: PostgreSQL and Redis behind passwords, and what the server and workers are told.

``stack up --postgres --redis`` puts Prefect on the setup Prefect documents for more than one
process: PostgreSQL for its database, Redis (``prefect-redis``) for messaging, the event ordering
and the lease storage, and the API closed by ``PREFECT_SERVER_API_AUTH_STRING``. The same
PostgreSQL holds the shared answer ledger (database ``ledger``) and the same Redis the global rate
limit (database 1, apart from Prefect's 0). Every listener binds beyond loopback, so each requires
its secret (stack_secrets.py); workers reach them by ``service_host``: the bridge address when they
run in namespaces of their own, else loopback. Each database has a role of its own
(postgres_access.py): a worker's password opens the ledger and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vqa_distill.ops.postgres_access import DatabaseGrant
from vqa_distill.ops.stack_secrets import LEDGER_PASSWORD_FILE, REDIS_PASSWORD_FILE, StackSecrets
from vqa_distill.ops.stack_state import AUTH_ENV, PASSWORD_SLOT, SecretUrl, StackState
from vqa_distill.paths import DEFAULT_POSTGRES_PORT, DEFAULT_REDIS_PORT, LOOPBACK
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV
from vqa_distill.teacher.ratelimit.global_gate import REDIS_URL_ENV

PREFECT_DATABASE = "prefect"
LEDGER_DATABASE = "ledger"
PREFECT_ROLE = "vqa_prefect"  # owns Prefect's database and reaches nothing else
LEDGER_ROLE = "vqa_ledger"  # owns the ledger database (a schema per run folder) and reaches nothing else
SUPERUSER = "postgres"  # the cluster's administrator: from loopback only
PREFECT_REDIS_DB = 0
LIMIT_REDIS_DB = 1
ANY_ADDRESS = "0.0.0.0"

Namespaces = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class TeamOptions:
    """What the team stack adds to the local one."""

    postgres: bool = False
    redis: bool = False
    cpu_workers: int = 1
    namespaces: Namespaces = "auto"
    postgres_port: int = DEFAULT_POSTGRES_PORT
    redis_port: int = DEFAULT_REDIS_PORT
    runs_per_worker: int | None = None  # flow runs one cpu worker takes at once (None: no cap, Prefect's default)

    @property
    def is_team(self) -> bool:
        """True when the stack listens beyond loopback (a database or broker other machines reach)."""
        return self.postgres or self.redis


@dataclass
class ServiceEnv:
    """The settings the team services give the Prefect server and the workers (secrets included: never shown)."""

    server: dict[str, str]
    workers: dict[str, str]
    clients: dict[str, SecretUrl] = field(default_factory=dict)  # a CLI or shell on this host: loopback


def postgres_grants() -> tuple[DatabaseGrant, DatabaseGrant]:
    """The stack's databases and their roles: Prefect's for the server, the ledger's for workers and clients."""
    return DatabaseGrant(PREFECT_DATABASE, PREFECT_ROLE), DatabaseGrant(LEDGER_DATABASE, LEDGER_ROLE)


def start_postgres_service(
    state: StackState, secrets: StackSecrets, options: TeamOptions, service_host: str, say: Callable[[str], None]
) -> ServiceEnv:
    """Start PostgreSQL as its own user (data under ``<home>/postgres``); give each database its own role.

    The superuser's password stays on this host (loopback only): the server gets Prefect's role,
    workers and clients the ledger's, and neither opens the other's database.
    """
    from vqa_distill.ops.postgres import database_url, init_cluster, start_postgres
    from vqa_distill.ops.postgres_access import grant_databases, write_hba

    home = Path(state.home)
    data_dir = home / "postgres"
    prefect, ledger = postgres_grants()
    init_cluster(data_dir, secrets.postgres_password)
    write_hba(data_dir, (prefect, ledger))
    env = dict(os.environ)  # PostgreSQL reads nothing of it; recorded so a restart starts it the same way
    process = state.record(start_postgres(data_dir, options.postgres_port, home / "logs", listen=ANY_ADDRESS, env=env), env)
    port = options.postgres_port
    admin = database_url(SUPERUSER, secrets.postgres_password, LOOPBACK, port, "postgres")
    grant_databases(admin, [(prefect, secrets.prefect_db_password), (ledger, secrets.ledger_password)])
    state.services["postgresql"] = f"{service_host}:{port} (pid {process.pid})"
    say(f"postgresql listening on port {port} (databases {PREFECT_DATABASE}, {LEDGER_DATABASE}, each with its own role)")
    prefect_url = database_url(PREFECT_ROLE, secrets.prefect_db_password, LOOPBACK, port, PREFECT_DATABASE)
    return ServiceEnv(
        server={"PREFECT_API_DATABASE_CONNECTION_URL": prefect_url.replace("+psycopg", "+asyncpg", 1)},
        workers={LEDGER_URL_ENV: database_url(LEDGER_ROLE, secrets.ledger_password, service_host, port, LEDGER_DATABASE)},
        clients={
            LEDGER_URL_ENV: SecretUrl(
                database_url(LEDGER_ROLE, PASSWORD_SLOT, LOOPBACK, port, LEDGER_DATABASE), LEDGER_PASSWORD_FILE
            )
        },
    )


def start_redis_service(
    state: StackState, secrets: StackSecrets, options: TeamOptions, service_host: str, say: Callable[[str], None]
) -> ServiceEnv:
    """Start Redis with a password (data under ``<home>/redis``): Prefect's messaging and the global rate limit."""
    from vqa_distill.ops.redis_server import REDIS_ENV, redis_url, start_redis

    home = Path(state.home)
    process = state.record(
        start_redis(home / "redis", options.redis_port, secrets.redis_password, home / "logs", bind=ANY_ADDRESS),
        REDIS_ENV,
    )
    state.services["redis"] = f"{service_host}:{options.redis_port} (pid {process.pid})"
    say(f"redis listening on port {options.redis_port}")
    return ServiceEnv(
        server={
            "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_REDIS_MESSAGING_HOST": LOOPBACK,
            "PREFECT_REDIS_MESSAGING_PORT": str(options.redis_port),
            "PREFECT_REDIS_MESSAGING_PASSWORD": secrets.redis_password,
            "PREFECT_REDIS_MESSAGING_DB": str(PREFECT_REDIS_DB),
        },
        workers={REDIS_URL_ENV: redis_url(secrets.redis_password, service_host, options.redis_port, LIMIT_REDIS_DB)},
        clients={
            REDIS_URL_ENV: SecretUrl(redis_url(PASSWORD_SLOT, LOOPBACK, options.redis_port, LIMIT_REDIS_DB), REDIS_PASSWORD_FILE)
        },
    )


def auth_env(secrets: StackSecrets) -> ServiceEnv:
    """The API's credentials: the server requires them, every client (workers, CLI, deploy) sends them."""
    return ServiceEnv(
        server={"PREFECT_SERVER_API_AUTH_STRING": secrets.prefect_auth, AUTH_ENV: secrets.prefect_auth},
        workers={AUTH_ENV: secrets.prefect_auth},
    )


def start_team_services(
    state: StackState, secrets: StackSecrets, options: TeamOptions, service_host: str, say: Callable[[str], None]
) -> ServiceEnv:
    """Start what ``options`` asks for; return the merged settings for the server and the workers."""
    merged = auth_env(secrets)
    for wanted, start in ((options.postgres, start_postgres_service), (options.redis, start_redis_service)):
        if wanted:
            more = start(state, secrets, options, service_host, say)
            merged.server.update(more.server)
            merged.workers.update(more.workers)
            merged.clients.update(more.clients)
    return merged
