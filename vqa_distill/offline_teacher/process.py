"""Start the offline teacher server as a separate process, for tests and demos, and always stop it.

A separate process rather than a thread: the client under test then meets a real socket, real
latency and real concurrency, and the server's CPU work does not share the test's GIL.
The parent binds the listening socket itself (port 0) and hands it to the child, so the port is known
before the child starts and no other process can take it in between.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vqa_distill.offline_teacher.server.config import LISTEN_BACKLOG, ServerConfig
from vqa_distill.paths import LOOPBACK
from vqa_distill.supervisor import ManagedProcess, is_healthy, start_process, stop_process, wait_until

API_KEY_ENV = "VQA_DISTILL_TEACHER_SERVER_KEY"  # the key travels by environment: argv shows in `ps`
STARTUP_TIMEOUT_S = 30.0  # a cold interpreter importing pydantic + starlette + Pillow takes ~1 s
STOP_TIMEOUT_S = 5.0  # after SIGTERM, then SIGKILL
ADMIN_TIMEOUT_S = 10.0


@dataclass
class TeacherServerHandle:
    """A running server: where it listens, plus helpers for its admin endpoints."""

    base_url: str  # e.g. http://127.0.0.1:PORT/v1, what openai.OpenAI(base_url=...) wants
    port: int
    process: ManagedProcess
    log_path: Path
    api_key: str | None = field(default=None, repr=False)
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = httpx.Client(base_url=self.root_url, headers=headers, timeout=ADMIN_TIMEOUT_S)

    @property
    def root_url(self) -> str:
        """Return the server root, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Return ``{"requests": [...], "totals": {...}}`` from ``GET /_admin/stats``."""
        return self._admin("GET", "/_admin/stats")

    def reset(self) -> None:
        """Clear the stats and the per-key fault counts; restore the configured rate limits, buckets full."""
        self._admin("POST", "/_admin/reset")

    def set_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the fault rules; returns them as the server validated them."""
        faults: list[dict[str, Any]] = self._admin("PUT", "/_admin/faults", rules)["faults"]
        return faults

    def set_latency(self, latency_s: float, jitter_s: float = 0.0) -> None:
        """Set the simulated model latency (seconds) and jitter (uniform 0..jitter_s)."""
        self._admin("PUT", "/_admin/latency", {"latency_s": latency_s, "jitter_s": jitter_s})

    def limits(self) -> dict[str, Any]:
        """Return ``{"rpm", "tpm", "remaining": {model: {"requests", "tokens"}}}`` from ``GET /_admin/limits``."""
        return self._admin("GET", "/_admin/limits")

    def set_limits(self, rpm: int | None = None, tpm: int | None = None) -> dict[str, Any]:
        """Set requests and tokens per minute per model (None: unlimited); every bucket starts full."""
        return self._admin("PUT", "/_admin/limits", {"rpm": rpm, "tpm": tpm})

    def mode(self) -> dict[str, Any]:
        """Return the mode and what it shows (models, model lookup, rate-limit headers...) from ``GET /_admin/mode``."""
        return self._admin("GET", "/_admin/mode")

    def capacity(self) -> dict[str, Any]:
        """Return K, Q, how many are in service and waiting, and their peaks, from ``GET /_admin/capacity``."""
        return self._admin("GET", "/_admin/capacity")

    def set_capacity(
        self, concurrency: int, queue_size: int | None, latency_per_active_s: float = 0.0
    ) -> dict[str, Any]:
        """Set a self-hosted server's K (in service at once), Q (waiting; None: unbounded) and batch slowdown."""
        body = {
            "concurrency": concurrency,
            "queue_size": queue_size,
            "latency_per_active_s": latency_per_active_s,
        }
        return self._admin("PUT", "/_admin/capacity", body)

    def set_billing(self, bill_hung_up: bool) -> None:
        """Bill (or not) an answer whose client hung up during its latency, as a real API bills it."""
        self._admin("PUT", "/_admin/billing", {"bill_hung_up": bill_hung_up})

    def log(self) -> str:
        """Return what the server process printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Close the admin HTTP client (the process is stopped by the context manager)."""
        self._http.close()

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()


def _child_env(api_key: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    # The child must import this very package even when it is not installed and cwd is elsewhere.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _child_argv(config: ServerConfig, fd: int, port: int, faults_file: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "vqa_distill.offline_teacher", "--fd", str(fd)]
    argv += ["--host", LOOPBACK, "--port", str(port), "--seed", str(config.seed)]
    argv += ["--latency", repr(config.latency_s), "--jitter", repr(config.jitter_s)]
    argv += ["--mode", config.mode, "--latency-per-active", repr(config.latency_per_active_s)]
    argv += ["--concurrency", str(config.concurrency)]
    argv += ["--queue-size", "unbounded" if config.queue_size is None else str(config.queue_size)]
    if config.models is not None:
        argv += ["--models", ",".join(config.models)]
    for flag, value in (("model-lookup", config.model_lookup), ("ratelimit-headers", config.ratelimit_headers)):
        if value is not None:
            argv.append(f"--{flag}" if value else f"--no-{flag}")
    if not config.retry_after:
        argv.append("--no-retry-after")
    for alias, model in config.bill_as.items():
        argv += ["--bill-as", f"{alias}={model}"]
    if config.qwen_max_pixels is not None:
        argv += ["--qwen-max-pixels", str(config.qwen_max_pixels)]
    if config.api_key is not None:
        argv += ["--api-key-env", API_KEY_ENV]
    if faults_file is not None:
        argv += ["--faults", str(faults_file)]
    if config.rpm is not None:
        argv += ["--rpm", str(config.rpm)]
    if config.tpm is not None:
        argv += ["--tpm", str(config.tpm)]
    if config.access_log:
        argv.append("--access-log")
    if config.bill_hung_up:
        argv.append("--bill-hung-up")
    return argv


def _merge(config: ServerConfig | None, overrides: dict[str, Any]) -> ServerConfig:
    base = config.model_dump(exclude_unset=True) if config is not None else {}
    return ServerConfig.model_validate({**base, **overrides})


@contextmanager
def running_teacher_server(
    config: ServerConfig | None = None, *, startup_timeout_s: float = STARTUP_TIMEOUT_S, **overrides: Any
) -> Iterator[TeacherServerHandle]:
    """Run the server in a child process on a free loopback port until the ``with`` block ends.

    ``overrides`` replace fields of ``config`` (e.g. ``latency_s=1.0``, ``api_key="sk-test"``,
    ``rpm=60``, ``tpm=30_000``, ``mode="self-hosted"``, ``concurrency=2``, ``queue_size=2``).
    ``host`` and ``port`` are ignored: the server always listens on a fresh loopback port.
    Returns only once ``/health`` answers; on exit the process is terminated, then killed.
    """
    config = _merge(config, overrides)
    api_key = config.api_key.get_secret_value() if config.api_key is not None else None
    with tempfile.TemporaryDirectory(prefix="teacher-server-") as tmp:
        faults_file = None
        if config.faults:
            faults_file = Path(tmp) / "faults.json"
            faults_file.write_text(json.dumps([r.model_dump() for r in config.faults]), encoding="utf-8")
        sock = socket.create_server((LOOPBACK, 0), backlog=LISTEN_BACKLOG)
        with sock:
            port = sock.getsockname()[1]
            argv = _child_argv(config, sock.fileno(), port, faults_file)
            process = start_process(
                "offline-teacher", argv, _child_env(api_key), Path(tmp), cwd=Path.cwd(), pass_fds=(sock.fileno(),)
            )
        # The child holds its own copy of the listening socket; ours is closed now.
        handle = TeacherServerHandle(
            base_url=f"http://{LOOPBACK}:{port}/v1",
            port=port,
            process=process,
            log_path=Path(process.log),
            api_key=api_key,
        )
        try:
            wait_until(lambda: is_healthy(f"{handle.root_url}/health"), process, startup_timeout_s, "offline teacher")
            yield handle
        finally:
            handle.close()
            stop_process(process, timeout_s=STOP_TIMEOUT_S)
