"""A private PostgreSQL server for the team stack and the tests: one cluster in a folder, on one port.

PostgreSQL refuses to run as root, so when this process is root the cluster belongs to the
``postgres`` OS user (Debian's packages create it) and every command runs through ``runuser``. That
user must be able to reach the data folder: a folder under ``/root`` is not reachable (mode 700), and
``init_cluster`` says so instead of letting initdb fail obscurely; put clusters under ``/var/lib`` or
``/srv``, or a temp folder opened to others (``mkdtemp`` + ``chmod 755``, as the tests do).

Nothing trusts: local connections use peer authentication, TCP connections from loopback a
scram-sha-256 password (initdb's own rules). Who else may connect, and to what, is the team stack's
to say (postgres_access.py). The superuser's password reaches initdb in a file readable by that user
only, deleted right after.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import URL

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.supervisor import ManagedProcess, start_process, stop_process, wait_until
from vqa_distill.teacher.ledger.store import reason, shown

POSTGRES_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60.0  # crash recovery after a kill replays the WAL first
INITDB_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 3  # one pg_isready probe
INSTALL_HINT = "apt-get install -y postgresql"


def find_postgres_bin() -> Path:
    """Return the ``bin`` folder of the newest PostgreSQL installed; ConfigError naming the install command if none."""
    found = [path / "bin" for path in POSTGRES_ROOT.glob("*") if (path / "bin" / "postgres").is_file()]
    if not found:
        raise ConfigError(f"PostgreSQL is not installed (no {POSTGRES_ROOT}/*/bin/postgres): {INSTALL_HINT}")
    return max(found, key=lambda path: _version(path.parent.name))


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _as_root() -> bool:
    return os.geteuid() == 0


def _runuser(os_user: str) -> list[str]:
    """The prefix that runs a command as the cluster's owner (nothing when this process is not root)."""
    return ["runuser", "-u", os_user, "--"] if _as_root() else []


def check_reachable(path: Path, os_user: str = OS_USER) -> None:
    """Raise ConfigError when ``os_user`` cannot traverse a parent folder of ``path`` (PostgreSQL could not open it)."""
    if not _as_root():
        return
    user = pwd.getpwnam(os_user)
    groups = {user.pw_gid} | {g for g in os.getgrouplist(os_user, user.pw_gid)}
    for parent in reversed(Path(path).resolve().parents):
        info = parent.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise ConfigError(
                f"the PostgreSQL data folder {path} is inside {parent}, which the {os_user!r} user cannot enter "
                f"(mode {stat.filemode(info.st_mode)}): put it under /var/lib or /srv, or chmod o+x {parent}"
            )


def init_cluster(data_dir: Path, password: str, *, os_user: str = OS_USER) -> None:
    """Create a cluster in ``data_dir`` whose superuser ``postgres`` has ``password``; keep an existing one."""
    data_dir = Path(data_dir).resolve()
    if (data_dir / "PG_VERSION").is_file():
        return
    check_reachable(data_dir, os_user)
    data_dir.mkdir(parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        raise ConfigError(f"{data_dir} is neither empty nor a PostgreSQL cluster")
    owner = pwd.getpwnam(os_user) if _as_root() else None
    if owner:
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    data_dir.chmod(0o700)
    secret_dir = Path(tempfile.mkdtemp(prefix="vqa-distill-pw-"))
    try:
        pwfile = secret_dir / "pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n", encoding="utf-8")
        if owner:
            for path in (secret_dir, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        argv = [
            *_runuser(os_user), str(find_postgres_bin() / "initdb"), "-D", str(data_dir), "-U", SUPERUSER,
            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INITDB_TIMEOUT_S, cwd="/")
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
    if done.returncode != 0:
        raise FatalRunError(f"initdb failed for {data_dir}:\n{(done.stdout + done.stderr)[-2000:]}")


def postgres_argv(data_dir: Path, port: int, listen: str = "127.0.0.1", *, os_user: str = OS_USER) -> list[str]:
    """Return the command that runs the cluster's server in the foreground (as ``os_user`` when root)."""
    data_dir = Path(data_dir).resolve()
    return [
        *_runuser(os_user), str(find_postgres_bin() / "postgres"), "-D", str(data_dir), "-p", str(port),
        "-c", f"listen_addresses={listen}", "-c", f"unix_socket_directories={data_dir}",
    ]  # fmt: skip


def is_ready(host: str, port: int) -> bool:
    """Tell whether the server accepts connections now (``pg_isready``: not merely listening, recovered too)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        probe = [str(find_postgres_bin() / "pg_isready"), "-q", "-h", host, "-p", str(port), "-t", str(READY_TIMEOUT_S)]
        return subprocess.run(probe, capture_output=True, timeout=READY_TIMEOUT_S + 2).returncode == 0
    return False


def start_postgres(
    data_dir: Path, port: int, logs: Path, *, listen: str = "127.0.0.1", env: Mapping[str, str] | None = None,
    os_user: str = OS_USER,
) -> ManagedProcess:
    """Start the cluster's server and return once it accepts connections (its log is ``logs/postgres.log``)."""
    process = start_process(
        "postgres", postgres_argv(data_dir, port, listen, os_user=os_user), dict(env or os.environ), logs, cwd=Path("/")
    )
    host = "127.0.0.1" if listen in ("*", "0.0.0.0", "127.0.0.1") else listen.split(",")[0].strip()
    try:
        wait_until(lambda: is_ready(host, port), process, START_TIMEOUT_S, f"PostgreSQL on port {port}")
    except BaseException:
        stop_process(process)
        raise
    return process


def database_url(user: str, password: str, host: str, port: int, db: str) -> str:
    """Return a ``postgresql+psycopg://`` URL, every part escaped (a password may hold ``@`` or ``/``)."""
    url = URL.create("postgresql+psycopg", username=user, password=password, host=host, port=port, database=db)
    return url.render_as_string(hide_password=False)


def create_database(url_admin: str, name: str) -> None:
    """Create database ``name`` on the server ``url_admin`` points at, unless it exists (two callers may race)."""
    engine = create_engine(url_admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(name)
                with contextlib.suppress(exc.ProgrammingError, exc.IntegrityError):  # created meanwhile
                    connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
    except exc.OperationalError as error:
        raise FatalRunError(f"cannot create database {name} at {shown(url_admin)}: {reason(error, url_admin)}") from None
    finally:
        engine.dispose()

