"""What ``stack up`` started and where, read back by ``status``, ``down`` and every client command.

``<home>/state.json`` lists each started process with its start time (so ``down`` stops those and
nothing else, even after a pid is reused) and how it was started (so ``restart`` starts a crashed
one again), the network pieces it created (namespaces, bridge) and the stack's own settings.
Secrets are never in it: a setting that holds one is kept as the name of the secret's file, read
again when the setting is needed, and ``env.sh`` does the same when sourced.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_text
from vqa_distill.errors import FatalRunError
from vqa_distill.ops.stack_secrets import PREFECT_AUTH_FILE, SECRETS_DIR, read_prefect_auth
from vqa_distill.paths import REPO_ROOT
from vqa_distill.supervisor import ManagedProcess, is_healthy

DEFAULT_HOME = REPO_ROOT / ".stack"
STATE_FILE = "state.json"
ENV_FILE = "env.sh"
AUTH_ENV = "PREFECT_API_AUTH_STRING"  # what a client sends; the server checks PREFECT_SERVER_API_AUTH_STRING

# What a client (the CLI, a shell) needs to use the stack's API and share its result storage.
CLIENT_SETTINGS = ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH")
# Where a secret URL (the shared ledger, the global rate limit) holds its password; the password
# itself is read from its file when a client needs it, so state.json and env.sh never hold it.
PASSWORD_SLOT = "PASSWORD-FROM-FILE"


@dataclass(frozen=True)
class SecretUrl:
    """A client setting whose URL holds a password: the URL with ``PASSWORD_SLOT``, and the secret's file."""

    template: str
    secret_file: str  # a file name under ``<home>/secrets``

    def fill(self, home: Path) -> str:
        """Return the URL with the password read from its file (URL-safe: ``token_urlsafe``)."""
        password = (home / SECRETS_DIR / self.secret_file).read_text(encoding="utf-8").strip()
        return self.template.replace(PASSWORD_SLOT, password)

    def shell(self, home: Path) -> str:
        """Return the URL as a shell word that reads the password when sourced."""
        before, after = self.template.split(PASSWORD_SLOT)
        secret = shlex.quote(str(home / SECRETS_DIR / self.secret_file))
        return f'{shlex.quote(before)}"$(cat {secret})"{shlex.quote(after)}'


@dataclass
class Launch:
    """How ``up`` started one process, so ``restart`` can start it again once it has died.

    ``env`` holds the settings it got beyond the environment of the command that ran ``up`` (its
    whole environment when it inherited none, ``inherits`` False); a setting holding one of the
    stack's secrets is in ``secret_env`` as a ``SecretUrl``, never by value. ``ports`` are those it
    listened on once ready, which a restarted one must answer on again.
    """

    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, SecretUrl] = field(default_factory=dict)
    inherits: bool = True
    ports: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, env: Mapping[str, str], home: Path, base: Mapping[str, str] = os.environ) -> Launch:
        """Record ``env`` (a process's environment) against ``base``, each secret of ``home`` by its file's name."""
        inherits = all(key in env for key in base)
        secrets = _secret_values(home)
        launch = cls(inherits=inherits)
        for key, value in env.items():
            if inherits and base.get(key) == value:
                continue
            held = [name for name, secret in secrets.items() if secret in value]
            if not held:
                launch.env[key] = value
                continue
            if len(held) > 1:  # a template has one slot
                raise FatalRunError(f"cannot record the setting {key}: it holds more than one of the stack's secrets")
            launch.secret_env[key] = SecretUrl(value.replace(secrets[held[0]], PASSWORD_SLOT), held[0])
        return launch

    def environment(self, home: Path, base: Mapping[str, str] = os.environ) -> dict[str, str]:
        """Return the environment to start the process with again: ``base`` (when it inherited one), its settings, its secrets."""
        env = dict(base) if self.inherits else {}
        env.update(self.env)
        env.update({key: url.fill(home) for key, url in self.secret_env.items()})
        return env


def _secret_values(home: Path) -> dict[str, str]:
    """Return the stack's secrets by file name ({} for a stack without any)."""
    folder = home / SECRETS_DIR
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    values = {path.name: path.read_text(encoding="utf-8").strip() for path in files if path.suffix != ".tmp"}
    return {name: value for name, value in values.items() if value}


@dataclass
class NetworkState:
    """The namespaces and bridge ``up`` created, so ``down`` removes exactly those."""

    bridge: str
    address: str
    hosts: list[dict[str, str]] = field(default_factory=list)  # namespace, veth_host, veth_ns, address


@dataclass
class StackState:
    """What ``up`` started and where."""

    home: str
    port: int
    api_url: str
    ui_url: str
    env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)
    network: NetworkState | None = None
    services: dict[str, str] = field(default_factory=dict)  # name -> address, shown by ``status``
    client_urls: dict[str, SecretUrl] = field(default_factory=dict)  # setting -> URL for a client on this host
    launches: dict[str, Launch] = field(default_factory=dict)  # process name -> how it was started

    @classmethod
    def load(cls, home: Path) -> StackState | None:
        """Read ``<home>/state.json``; None when no stack was started there."""
        path = home / STATE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        data["processes"] = [ManagedProcess(**p) for p in data.get("processes", [])]
        data["network"] = NetworkState(**data["network"]) if data.get("network") else None
        data["client_urls"] = {k: SecretUrl(**v) for k, v in data.get("client_urls", {}).items()}
        data["launches"] = {k: _launch(v) for k, v in data.get("launches", {}).items()}
        return cls(**data)

    def save(self) -> None:
        """Write the state (after each start, so a failed ``up`` can still be stopped)."""
        atomic_write_text(Path(self.home) / STATE_FILE, json.dumps(asdict(self), indent=2))

    def alive(self) -> dict[str, bool]:
        """Return each started process's name and whether it still runs."""
        return {p.name: p.handle() is not None for p in self.processes}

    def record(self, process: ManagedProcess, env: Mapping[str, str]) -> ManagedProcess:
        """Add a process started with ``env`` and save at once, so a failed start can still be stopped
        and a dead process started again (``Launch``: its secrets by file name)."""
        self.processes.append(process)
        self.launches[process.name] = Launch.of(env, Path(self.home))
        self.save()
        return process

    def process(self, name: str) -> ManagedProcess | None:
        """Return the started process called ``name``, if any."""
        return next((p for p in self.processes if p.name == name), None)


def _launch(data: dict[str, Any]) -> Launch:
    secret_env = {k: SecretUrl(**v) for k, v in data.pop("secret_env", {}).items()}
    return Launch(secret_env=secret_env, **data)


def shown_settings(env: Mapping[str, str], keys: set[str]) -> dict[str, str]:
    """Return the stack's own settings from ``env`` (never the inherited environment, which may hold secrets)."""
    return {k: v for k, v in env.items() if k in keys}


def write_env_file(state: StackState) -> Path:
    """Write ``<home>/env.sh`` for ``source``: the API address, the shared ledger and rate limit, and the
    credentials, each password read from its file when sourced."""
    home = Path(state.home)
    lines = [f"export {k}={shlex.quote(state.env[k])}\n" for k in CLIENT_SETTINGS if k in state.env]
    lines += [f"export {k}={url.shell(home)}\n" for k, url in state.client_urls.items()]
    if read_prefect_auth(home) is not None:
        secret = shlex.quote(str(home / SECRETS_DIR / PREFECT_AUTH_FILE))
        lines.append(f'export {AUTH_ENV}="$(cat {secret})"\n')
    path = home / ENV_FILE
    atomic_write_text(path, "".join(lines))
    return path


def stack_client_env(home: Path = DEFAULT_HOME) -> dict[str, str]:
    """Return the settings a client needs to use a running stack (API URL, storage, shared ledger, global
    rate limit, credentials); {} when none runs."""
    home = home.resolve()
    state = StackState.load(home)
    if state is None or not any(p.name == "prefect-server" and p.handle() for p in state.processes):
        return {}
    env = {k: state.env[k] for k in CLIENT_SETTINGS if k in state.env}
    env.update({k: url.fill(home) for k, url in state.client_urls.items()})
    auth = read_prefect_auth(home)
    if auth is not None:
        env[AUTH_ENV] = auth
    return env


def status(home: Path = DEFAULT_HOME) -> dict[str, Any] | None:
    """Return the stack's URLs, services and which of its processes run; None when none was started under ``home``."""
    state = StackState.load(home.resolve())
    if state is None:
        return None
    return {
        "home": state.home,
        "ui_url": state.ui_url,
        "api_url": state.api_url,
        "api_healthy": is_healthy(f"{state.api_url}/health"),
        "services": state.services,
        "namespaces": [h["namespace"] for h in state.network.hosts] if state.network else [],
        "processes": {p.name: {"pid": p.pid, "running": p.handle() is not None, "log": p.log} for p in state.processes},
    }
