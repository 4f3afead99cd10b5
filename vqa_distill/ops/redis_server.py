"""A Redis server the project can start: the shared state of the global rate limit, with a password.

Debian's ``redis-server`` runs from a config file this module writes (mode 600): the password goes
there and never on the command line, which ``ps`` shows to every user of the machine. Nothing is
persisted (``save ""``, no append-only file): the rate limit's state is seconds long and rebuilds
itself, so a restart costs at most one burst.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import redis

from vqa_distill.atomic import atomic_write_text
from vqa_distill.errors import ConfigError
from vqa_distill.paths import LOOPBACK
from vqa_distill.supervisor import ManagedProcess, start_process, stop_process, wait_until

REDIS_BINARY = "redis-server"
DEBIAN_REDIS = Path("/usr/bin/redis-server")
REDIS_START_TIMEOUT_S = 20.0  # an empty server starts in milliseconds; the margin is for a busy machine
PING_TIMEOUT_S = 1.0
CONF_NAME = "redis.conf"
# A password Redis' config parser reads back unchanged without quoting rules of its own.
REDIS_ENV = {"PATH": "/usr/bin:/bin"}  # all redis-server gets of its starter's environment (it may hold secrets)
PASSWORD_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_.~")
MIN_PASSWORD_CHARS = 16


def new_password() -> str:
    """Return a random password for a server this project starts (URL-safe, 32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def redis_binary() -> str:
    """Return the path of ``redis-server``; raise ConfigError naming the package when it is missing."""
    found = shutil.which(REDIS_BINARY) or (str(DEBIAN_REDIS) if DEBIAN_REDIS.exists() else None)
    if found is None:
        raise ConfigError("redis-server is not installed: apt-get install redis-server")
    return found


def redis_conf(port: int, password: str, *, data_dir: Path, bind: str = LOOPBACK) -> str:
    """Return the config of a password-protected, non-persistent server on ``bind:port``."""
    _check_password(password)
    return "\n".join(
        [
            f"port {port}",
            f"bind {bind}",
            "protected-mode yes",
            f"requirepass {password}",
            f'dir "{data_dir}"',
            'save ""',  # the limiter's state lives seconds: nothing worth a snapshot
            "appendonly no",
            'logfile ""',  # stdout: the supervisor's log file
            "daemonize no",  # the supervisor owns the process
        ]
    )


def write_redis_conf(data_dir: Path, port: int, password: str, *, bind: str = LOOPBACK) -> Path:
    """Write the server's config under ``data_dir`` (owner-only: it holds the password); return its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CONF_NAME
    atomic_write_text(path, redis_conf(port, password, data_dir=data_dir, bind=bind))  # mkstemp: mode 600
    path.chmod(0o600)
    return path


def redis_argv(conf: Path) -> list[str]:
    """Return the server's command: the binary and its config file (never the password)."""
    return [redis_binary(), str(conf)]


def redis_url(password: str, host: str = LOOPBACK, port: int = 6379, db: int = 0) -> str:
    """Return the ``redis://`` URL of a password-protected server (a secret: never log it)."""
    return f"redis://:{quote(password, safe='')}@{host}:{port}/{db}"


def answers_ping(host: str, port: int, password: str) -> bool:
    """Tell whether the server at ``host:port`` answers an authenticated PING now."""
    client = redis.Redis(host=host, port=port, password=password, socket_timeout=PING_TIMEOUT_S,
                         socket_connect_timeout=PING_TIMEOUT_S)  # fmt: skip
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis(data_dir: Path, port: int, password: str, logs: Path, *, bind: str = LOOPBACK) -> ManagedProcess:
    """Start ``redis-server`` on ``bind:port``; return once an authenticated PING answers."""
    argv = redis_argv(write_redis_conf(data_dir, port, password, bind=bind))
    process = start_process(f"redis-{port}", argv, REDIS_ENV, logs, cwd=data_dir)
    host = LOOPBACK if bind in ("0.0.0.0", "*", "::") else bind.split()[0]
    try:
        wait_until(lambda: answers_ping(host, port, password), process, REDIS_START_TIMEOUT_S, "redis server")
    except BaseException:
        stop_process(process)
        raise
    return process


@contextlib.contextmanager
def running_redis(data_dir: Path, logs: Path, port: int, password: str | None = None) -> Iterator[str]:
    """Run a loopback Redis until the block ends (tests, benchmarks); yields its URL, password included."""
    password = password or new_password()
    process = start_redis(data_dir, port, password, logs)
    try:
        yield redis_url(password, LOOPBACK, port)
    finally:
        stop_process(process)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS or not set(password) <= PASSWORD_ALPHABET:
        # The message describes the rule, never the value.
        raise ConfigError(
            f"the Redis password must be at least {MIN_PASSWORD_CHARS} characters of A-Z a-z 0-9 - _ . ~"
        )
