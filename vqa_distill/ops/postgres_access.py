"""Who may reach which database of the team's PostgreSQL: one role per database, the superuser on loopback only.

Workers hold a database password in their environment, so that password should open as little as
possible. Each database the stack serves gets a login role of its own that owns it (and so may
create schemas and tables in it) and may connect to nothing else: ``CONNECT`` is revoked from
``PUBLIC`` on every database. ``pg_hba.conf`` is written whole at each start: the superuser (and any
role) by password from loopback, each role from any address to its own database only, with
scram-sha-256; nothing trusts. A cluster made before the roles existed is handed over: objects the
superuser created in a database become its role's, so the role may keep altering them.

A role's password never reaches the server as text: the client computes the SCRAM verifier
(libpq's ``PQencryptPasswordConn``) and sends that, so not even a failed statement in the server's
log holds the secret.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, create_engine, exc, make_url, text

from vqa_distill.atomic import atomic_write_text
from vqa_distill.errors import FatalRunError
from vqa_distill.ops.postgres import create_database
from vqa_distill.teacher.ledger.store import reason, shown

SCRAM = "scram-sha-256"
LOOPBACK_NETS = ("127.0.0.1/32", "::1/128")
ANY_NETS = ("0.0.0.0/0", "::/0")
HBA_FILE = "pg_hba.conf"

# Every object the connected superuser owns in a database's own schemas (none of an extension's):
# the statements that give each to the database's role. Sequences that belong to a column follow
# their table.
_HAND_OVER = """
WITH mine AS (
  SELECT n.oid AS nsp FROM pg_namespace n
  WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
), free AS (
  SELECT classid, objid FROM pg_depend WHERE deptype IN ('a', 'i', 'e')
)
SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, CAST(:role AS text)) FROM pg_namespace n
  WHERE n.oid IN (SELECT nsp FROM mine) AND n.nspowner = to_regrole(current_user)
    AND (n.tableoid, n.oid) NOT IN (SELECT classid, objid FROM free)
UNION ALL
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                             WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass, CAST(:role AS text))
  FROM pg_class c
  WHERE c.relnamespace IN (SELECT nsp FROM mine) AND c.relowner = to_regrole(current_user)
    AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND (c.tableoid, c.oid) NOT IN (SELECT classid, objid FROM free)
UNION ALL
SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, CAST(:role AS text))
  FROM pg_type t
  WHERE t.typnamespace IN (SELECT nsp FROM mine) AND t.typowner = to_regrole(current_user)
    AND t.typtype IN ('e', 'd', 'r', 'm') AND (t.tableoid, t.oid) NOT IN (SELECT classid, objid FROM free)
UNION ALL
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, CAST(:role AS text))
  FROM pg_proc p
  WHERE p.pronamespace IN (SELECT nsp FROM mine) AND p.proowner = to_regrole(current_user)
    AND (p.tableoid, p.oid) NOT IN (SELECT classid, objid FROM free)
"""


@dataclass(frozen=True)
class DatabaseGrant:
    """One database and the login role that owns it and may reach nothing else."""

    database: str
    role: str


def hba_conf(grants: Sequence[DatabaseGrant]) -> str:
    """Return a whole ``pg_hba.conf``: peer on the socket, password on loopback, each role to its database from anywhere."""
    lines = [
        "# Written at every start of the cluster by the stack: edit the stack, not this file.",
        "# socket: the OS user's own name (the stack's admin commands run as postgres)",
        "local   all             all                                     peer",
        "local   replication     all                                     peer",
        "# loopback: any role by password, the superuser included (and only from here)",
        *(f"host    all             all             {net:<23} {SCRAM}" for net in LOOPBACK_NETS),
        *(f"host    replication     all             {net:<23} {SCRAM}" for net in LOOPBACK_NETS),
        "# any other address: each role to its own database, by password",
        *(f"host    {g.database:<15} {g.role:<15} {net:<23} {SCRAM}" for g in grants for net in ANY_NETS),
    ]
    return "\n".join(lines) + "\n"


def write_hba(data_dir: Path, grants: Sequence[DatabaseGrant]) -> Path:
    """Write the cluster's ``pg_hba.conf`` (owned like the data folder, mode 600); the server reads it when it starts."""
    path = Path(data_dir) / HBA_FILE
    atomic_write_text(path, hba_conf(grants))
    owner = Path(data_dir).stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    path.chmod(0o600)
    return path


def grant_databases(admin_url: str, grants: Sequence[tuple[DatabaseGrant, str]]) -> None:
    """Give each database of ``grants`` to its role (created, or its password set again, from ``(grant, password)``).

    Idempotent: every ``stack up`` runs it, so a changed password file or a cluster made before the
    roles existed ends as if made today. ``admin_url`` is the superuser's, on loopback.
    """
    for grant, password in grants:
        _ensure_role(admin_url, grant.role, password)
        create_database(admin_url, grant.database)
        owner = sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(grant.database), sql.Identifier(grant.role))
        _run(admin_url, [owner])
        _hand_over(make_url(admin_url).set(database=grant.database).render_as_string(hide_password=False), grant.role)
    _close_databases(admin_url)


def _ensure_role(admin_url: str, role: str, password: str) -> None:
    """Create ``role`` (login, no other power) unless it exists; set its password as a SCRAM verifier."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            raw = _driver(connection)
            exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            verb = "ALTER" if exists else "CREATE"
            verifier = raw.pgconn.encrypt_password(password.encode(), role.encode(), SCRAM.encode()).decode()
            statement = sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}")
            connection.exec_driver_sql(statement.format(sql.Identifier(role), sql.Literal(verifier)).as_string(raw))
    except exc.OperationalError as error:
        raise FatalRunError(f"cannot set up role {role} at {shown(admin_url)}: {reason(error, admin_url)}") from None
    finally:
        engine.dispose()


def _hand_over(database_url: str, role: str) -> None:
    """Give ``role`` what the superuser owns in the database at ``database_url`` (made before the role existed)."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for (statement,) in connection.execute(text(_HAND_OVER), {"role": role}).all():
                connection.exec_driver_sql(statement)
    except exc.OperationalError as error:
        raise FatalRunError(f"cannot hand over {shown(database_url)} to {role}: {reason(error, database_url)}") from None
    finally:
        engine.dispose()


def _close_databases(admin_url: str) -> None:
    """Revoke ``CONNECT`` from ``PUBLIC`` on every database: a role reaches the one it owns, nothing else."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            names = connection.execute(text("SELECT datname FROM pg_database WHERE datallowconn")).scalars().all()
    finally:
        engine.dispose()
    revoke = sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC")
    _run(admin_url, [revoke.format(sql.Identifier(name)) for name in names])


def _run(url: str, statements: Sequence[sql.Composable]) -> None:
    """Run composed statements, each on its own (database-level statements refuse a transaction)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            raw = _driver(connection)
            for statement in statements:
                connection.exec_driver_sql(statement.as_string(raw))
    except exc.OperationalError as error:
        raise FatalRunError(f"cannot change the databases at {shown(url)}: {reason(error, url)}") from None
    finally:
        engine.dispose()


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under SQLAlchemy's: it quotes composed SQL and computes the SCRAM verifier."""
    raw = connection.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection), "the stack's URLs name the psycopg driver"
    return raw
