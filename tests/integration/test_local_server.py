"""The command line's local Prefect server as a new user meets it: a port just released is free again, the UI
of a server on another port calls the API on that port, and another Prefect home's server is named, not used."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import REPO_ROOT
from vqa_distill.errors import EXIT_FATAL, FatalRunError
from vqa_distill.ops import local_server
from vqa_distill.ops.local_server import PORT_ENV, local_api_url, prefect_api_env, start_local_server
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.supervisor import port_is_free


def _time_wait_port() -> int:
    """A loopback port whose listener is closed and whose last connection waits out TIME_WAIT on it.

    The listener sets SO_REUSEADDR as Prefect's server does (uvicorn, through asyncio's ``create_server``).
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    listener.close()
    accepted.close()  # the server's side closes first: its end, on `port`, enters TIME_WAIT
    client.close()
    return port


def test_a_port_whose_connections_wait_out_time_wait_is_free() -> None:
    port = _time_wait_port()
    states = subprocess.run(["ss", "-tan", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert "TIME-WAIT" in states, states  # the situation `prefect server stop` leaves for a minute
    assert port_is_free(port)
    with socket.socket() as server:  # and a server can listen there, as the probe promised
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_is_free(port)  # a listener still makes it taken


@pytest.fixture(scope="module")
def background_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A server started the way the command line starts one, on a port that is not 4200; stopped afterwards."""
    home, port = tmp_path_factory.mktemp("prefect-home"), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        start_local_server(home, port, lambda line: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield home, port
    finally:
        subprocess.run([sys.executable, "-m", "prefect", "server", "stop"], env={**env, "PREFECT_HOME": str(home)},
                       capture_output=True, timeout=120)  # fmt: skip


def test_the_ui_of_a_server_on_another_port_calls_the_api_on_that_port(background_server: tuple[Path, int]) -> None:
    _, port = background_server
    settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=30).json()
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"


def test_a_server_of_another_prefect_home_is_named_not_used(
    background_server: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, port = background_server
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv(PORT_ENV, str(port))
    monkeypatch.setattr(local_server, "stack_client_env", lambda: {})  # no `.stack` of this checkout interferes
    monkeypatch.setenv("PREFECT_HOME", str(home))
    assert prefect_api_env(lambda line: None) == {"PREFECT_API_URL": local_api_url(port)}  # its own home's: used
    mine = tmp_path / "my-prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(mine))
    with pytest.raises(FatalRunError, match=f"runs with Prefect home {home}, not yours"):
        prefect_api_env(lambda line: None)
    # The command line says it in one line: what to do, no traceback.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([sys.executable, "-m", "vqa_distill.cli", "failed", "latest"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == EXIT_FATAL, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0 and PORT_ENV in done.stderr and "Traceback" not in done.stderr
