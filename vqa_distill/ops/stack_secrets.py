"""The team stack's passwords: generated once at ``stack up``, kept in files only their owner can read.

PostgreSQL, Redis and the Prefect API listen beyond loopback in the team stack, so each requires a
secret; PostgreSQL has three, one per role (the superuser, reached from loopback only; the ledger's
role, which workers hold; Prefect's role, which only the server holds). They are made with
``secrets.token_urlsafe`` the first time, written to ``<home>/secrets/`` (a 0700 folder of 0600
files) and read back by every later ``up``: a PostgreSQL cluster initialised with a password must be
started with the same one. No secret is printed, logged or written to the
stack's state file; ``env.sh`` reads them from these files when it is sourced.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRETS_DIR = "secrets"
POSTGRES_PASSWORD_FILE = "postgres-password"
LEDGER_PASSWORD_FILE = "ledger-password"  # the ledger database's own role (workers, clients)
PREFECT_DB_PASSWORD_FILE = "prefect-db-password"  # Prefect's database's own role (the server only)
REDIS_PASSWORD_FILE = "redis-password"
PREFECT_AUTH_FILE = "prefect-auth"  # "user:password", Prefect's PREFECT_SERVER_API_AUTH_STRING
PREFECT_AUTH_USER = "vqa"


@dataclass(frozen=True)
class StackSecrets:
    """The secrets of a team stack and the folder they live in."""

    folder: Path
    postgres_password: str
    ledger_password: str
    prefect_db_password: str
    redis_password: str
    prefect_auth: str

    def __repr__(self) -> str:  # a dataclass repr would print the secrets
        return f"StackSecrets(folder={str(self.folder)!r})"

    def path(self, name: str) -> Path:
        """Return the file that holds one secret (for ``env.sh`` to read at source time)."""
        return self.folder / name


def _read_or_create(folder: Path, name: str, make: str) -> str:
    """Return the secret stored in ``folder/name``, creating it (mode 0600, atomically) the first time."""
    path = folder / name
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(make + "\n")
    os.replace(temporary, path)
    return make


def load_secrets(home: Path) -> StackSecrets:
    """Return the stack's secrets under ``home``, generating those that do not exist yet."""
    folder = home / SECRETS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return StackSecrets(
        folder=folder,
        postgres_password=_read_or_create(folder, POSTGRES_PASSWORD_FILE, secrets.token_urlsafe(24)),
        ledger_password=_read_or_create(folder, LEDGER_PASSWORD_FILE, secrets.token_urlsafe(24)),
        prefect_db_password=_read_or_create(folder, PREFECT_DB_PASSWORD_FILE, secrets.token_urlsafe(24)),
        redis_password=_read_or_create(folder, REDIS_PASSWORD_FILE, secrets.token_urlsafe(24)),
        prefect_auth=_read_or_create(folder, PREFECT_AUTH_FILE, f"{PREFECT_AUTH_USER}:{secrets.token_urlsafe(24)}"),
    )


def read_prefect_auth(home: Path) -> str | None:
    """Return the Prefect API credentials of the stack under ``home``; None for a stack without them."""
    path = home / SECRETS_DIR / PREFECT_AUTH_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None
