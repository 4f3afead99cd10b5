"""Find a Prefect API for the command line, or start a local server that outlives the command.

Without a server, Prefect starts a temporary one inside each command: 19-29 s on a fresh Prefect
home on a 2-core machine (9 s warm), against a 20 s default start-up timeout, so a cold first run
could die, and every run paid the start-up again and left nothing to look at in a UI. Instead the
command line uses, in order: ``PREFECT_API_URL`` from the environment; the ``PREFECT_API_URL`` of
the active Prefect profile; the local stack's server (``vqa-distill stack up``); a local server this
module started earlier; else it starts one with Prefect's own ``prefect server start --background``
under the user's Prefect home, waits for it with a generous timeout, and says once where the UI is.
``prefect server stop`` stops it.

A server already answering on the port is used only when it runs with this Prefect home (its
``/api/admin/settings`` say which): another home's server would hold other blocks and runs, and a
Secret block saved in this home would be "not found" there. The UI of a server started here calls
the API on the server's own port (``PREFECT_SERVER_UI_API_URL``): Prefect's default is port 4200
whatever the server listens on.

Everything here runs before ``import prefect``: Prefect reads its settings once, at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx

from vqa_distill.errors import FatalRunError
from vqa_distill.ops.prefect_server import SERVER_SETTINGS
from vqa_distill.ops.stack_state import stack_client_env
from vqa_distill.paths import DEFAULT_PREFECT_PORT, LOOPBACK
from vqa_distill.supervisor import is_healthy, port_is_free
from vqa_distill.waiting import poll_until

PORT_ENV = "VQA_DISTILL_PREFECT_PORT"  # the local server's port, when 4200 is someone else's
START_TIMEOUT_S = 240.0  # a fresh home migrates a new SQLite database: 19-29 s idle, more when busy
POLL_S = 0.5
PID_FILE = "server.pid"  # what `prefect server start --background` writes in the Prefect home
LOG_FILE = "vqa-distill-server.log"
UI_API_URL_SETTINGS = ("PREFECT_SERVER_UI_API_URL", "PREFECT_UI_API_URL")  # where the UI calls the API
SETTINGS_TIMEOUT_S = 10.0


def prefect_home(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """Return the Prefect home the server and the CLI use (``PREFECT_HOME``, else ``~/.prefect``)."""
    return Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def profile_api_url(home: Path, env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Return ``PREFECT_API_URL`` of the active profile in ``<home>/profiles.toml``, if it sets one."""
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = env.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    value = data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def local_api_url(port: int) -> str:
    """Return the API URL of a local server on ``port``."""
    return f"http://{LOOPBACK}:{port}/api"


def server_home(api_url: str) -> Path | None:
    """Return the Prefect home of the server at ``api_url`` (its settings say); None when it does not say."""
    try:
        response = httpx.get(f"{api_url}/admin/settings", timeout=SETTINGS_TIMEOUT_S)
        home = response.json().get("home") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return Path(home) if isinstance(home, str) and home else None


def check_home(api_url: str, home: Path, port: int) -> None:
    """Raise FatalRunError (one line: what to do) unless the server at ``api_url`` runs with Prefect home ``home``."""
    theirs = server_home(api_url)
    if theirs is not None and theirs.expanduser().resolve() == home.expanduser().resolve():
        return
    whose = f"Prefect home {theirs}" if theirs else "a Prefect home it does not show"
    stop = f"stop it (PREFECT_HOME={theirs} prefect server stop)" if theirs else "stop it"
    raise FatalRunError(
        f"the Prefect server on port {port} runs with {whose}, not yours ({home}): {stop}, "
        f"set {PORT_ENV}=N to start your own on another port, or PREFECT_API_URL={api_url} to use that one"
    )


def start_local_server(home: Path, port: int, say: Callable[[str], None]) -> str:
    """Start ``prefect server start --background`` under ``home`` on ``port``; return its API URL once healthy."""
    home.mkdir(parents=True, exist_ok=True)
    api_url = local_api_url(port)
    pid_file = home / PID_FILE
    if pid_file.exists():  # left by a server that is gone (we checked it does not answer)
        pid_file.unlink()
    say(f"starting a local Prefect server in the background (first start takes ~30 s): http://{LOOPBACK}:{port}")
    env = {**os.environ, **SERVER_SETTINGS, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    if not any(env.get(name) for name in UI_API_URL_SETTINGS):  # a URL set on purpose (a proxy) is kept
        env[UI_API_URL_SETTINGS[0]] = api_url
    argv = [sys.executable, "-m", "prefect", "server", "start", "--background", "--host", LOOPBACK, "--port", str(port)]
    with (home / LOG_FILE).open("ab") as log:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=120)
    if done.returncode != 0:
        raise FatalRunError(f"could not start a local Prefect server (see {home / LOG_FILE})")
    poll_until(
        lambda: is_healthy(f"{api_url}/health"), timeout_s=START_TIMEOUT_S, every_s=POLL_S,
        timed_out=lambda: FatalRunError(
            f"the local Prefect server did not answer within {START_TIMEOUT_S:.0f} s (see {home / LOG_FILE}); "
            "set PREFECT_API_URL to a running server instead"
        ),
    )  # fmt: skip
    say(f"Prefect UI: http://{LOOPBACK}:{port} (stays up for later commands; stop it with `prefect server stop`)")
    return api_url


def prefect_api_env(say: Callable[[str], None]) -> dict[str, str]:
    """Return the settings that point this process at a Prefect API ({} when the environment already does)."""
    if os.environ.get("PREFECT_API_URL"):
        return {}
    home = prefect_home()
    if profile_api_url(home):
        return {}
    stack = stack_client_env()
    if stack:
        say(f"using the local stack's Prefect API at {stack['PREFECT_API_URL']}")
        return stack
    port = int(os.environ.get(PORT_ENV) or DEFAULT_PREFECT_PORT)
    api_url = local_api_url(port)
    if is_healthy(f"{api_url}/health"):
        check_home(api_url, home, port)
        return {"PREFECT_API_URL": api_url}
    if not port_is_free(port):
        raise FatalRunError(
            f"port {port} on {LOOPBACK} is taken by something that is not a Prefect server: "
            f"set {PORT_ENV}=N, or PREFECT_API_URL to a running server"
        )
    return {"PREFECT_API_URL": start_local_server(home, port, say)}
