"""A local Prefect stack in one command: server, pools, deployments and workers; stopped exactly as started.

``up`` starts ``prefect server`` on 127.0.0.1 (telemetry off, the batch settings that keep the
SQLite server from dropping task runs under load), applies the pools, the gpu limit and the
deployments, then starts a ``cpu-pool`` worker and, where ``nvidia-smi`` lists a GPU (or when a CPU
stand-in is asked for), a ``gpu-pool`` worker. Every process it starts is recorded in
``<home>/state.json`` with its start time, so ``down`` stops those processes and their children
and nothing else, even if a pid has since been reused.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.ops.prefect_server import SERVER_SETTINGS, SERVER_START_TIMEOUT_S, server_argv
from vqa_distill.paths import DEFAULT_PREFECT_PORT as DEFAULT_PORT
from vqa_distill.paths import DEFAULT_TEACHER_PORT, LOOPBACK, REPO_ROOT
from vqa_distill.supervisor import (
    ManagedProcess,
    is_healthy,
    log_tail,
    port_is_free,
    start_process,
    stop_process,
    wait_until,
)

DEFAULT_HOME = REPO_ROOT / ".stack"
STATE_FILE = "state.json"
ENV_FILE = "env.sh"
WORKER_START_TIMEOUT_S = 60.0
OFFLINE_TEACHER_KEY = "sk-offline-teacher"  # the offline server accepts any key; the client needs one
WORKER_READY = "started!"  # what `prefect worker start` logs once it polls

# What a client (the CLI, a shell) needs to use the stack's API and share its result storage.
CLIENT_SETTINGS = ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH")

GpuWorker = Literal["auto", "cpu", "none"]



@dataclass
class StackState:
    """What ``up`` started and where: read back by ``status`` and ``down``."""

    home: str
    port: int
    api_url: str
    ui_url: str
    env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)

    @classmethod
    def load(cls, home: Path) -> StackState | None:
        """Read ``<home>/state.json``; None when no stack was started there."""
        path = home / STATE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        data["processes"] = [ManagedProcess(**p) for p in data.get("processes", [])]
        return cls(**data)

    def save(self) -> None:
        """Write the state (after each start, so a failed ``up`` can still be stopped)."""
        path = Path(self.home) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    def alive(self) -> dict[str, bool]:
        """Return each started process's name and whether it still runs."""
        return {p.name: p.handle() is not None for p in self.processes}


def stack_env(home: Path, port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of every stack process: this one's, with the stack's Prefect settings on top."""
    env = dict(os.environ if base is None else base)
    env.update(SERVER_SETTINGS)
    env.update(
        {
            "PREFECT_HOME": str(home / "prefect-home"),
            "PREFECT_API_URL": f"http://{LOOPBACK}:{port}/api",
            # Persisted task results (the ask-teacher cache across runs) in one place all workers share.
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),
            "VQA_DISTILL_ROOT": str(REPO_ROOT),  # prefect.yaml's pull step: run this checkout
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def gpu_count() -> int:
    """Return the number of GPUs ``nvidia-smi -L`` lists (0 without nvidia-smi or a driver)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU ")) if done.returncode == 0 else 0


def _log_says(process: ManagedProcess, text: str) -> Callable[[], bool]:
    return lambda: text in log_tail(process.log, 20_000)


def worker_argv(pool: str, name: str, limit: int | None = None) -> list[str]:
    """Return the command of a process worker on ``pool`` (this interpreter: the project's venv)."""
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name]
    return [*argv, "--limit", str(limit)] if limit else argv


def up(
    home: Path = DEFAULT_HOME,
    *,
    port: int = DEFAULT_PORT,
    gpu_worker: GpuWorker = "auto",
    offline_teacher: bool = False,
    teacher_port: int = DEFAULT_TEACHER_PORT,
    deploy: bool = True,
    say: Callable[[str], None] = print,
) -> StackState:
    """Start the stack under ``home``; when it already runs there, re-apply the deployments and return it.

    If any step fails, what was started is stopped again before the error is raised.
    """
    home = home.resolve()
    current = StackState.load(home)
    if current is not None and all(current.alive().values()):
        say(f"stack already running under {home}")
        if deploy:
            apply_deployments({**os.environ, **current.env}, gpu_slots=max(gpu_count(), 1), say=say)
        say(f"Prefect UI: {current.ui_url}")
        return current
    if current is not None:
        raise ConfigError(f"a stack under {home} is partly stopped ({current.alive()}): run `vqa-distill stack down` first")
    if not port_is_free(port):
        raise ConfigError(f"port {port} on {LOOPBACK} is taken: pass --port N")
    if offline_teacher and not port_is_free(teacher_port):
        raise ConfigError(f"port {teacher_port} for the offline teacher is taken: pass --teacher-port N")
    home.mkdir(parents=True, exist_ok=True)
    env = stack_env(home, port)
    if offline_teacher:
        env.setdefault("OPENAI_API_KEY", OFFLINE_TEACHER_KEY)
    state = StackState(
        home=str(home), port=port, api_url=env["PREFECT_API_URL"], ui_url=f"http://{LOOPBACK}:{port}", env=_shown(env),
    )  # fmt: skip
    try:
        _start_all(state, env, gpu_worker=gpu_worker, offline_teacher=offline_teacher, teacher_port=teacher_port,
                   deploy=deploy, say=say)  # fmt: skip
    except BaseException:
        say("start-up failed: stopping what was started")
        down(home, say=say)
        raise
    write_env_file(state)
    say(f"Prefect UI: {state.ui_url}")
    say(f"point a shell at it: source {Path(state.home) / ENV_FILE}")
    return state


def _start_all(
    state: StackState,
    env: dict[str, str],
    *,
    gpu_worker: GpuWorker,
    offline_teacher: bool,
    teacher_port: int,
    deploy: bool,
    say: Callable[[str], None],
) -> None:
    """Start server, (offline teacher,) deployments and workers, recording each process as it starts."""
    from vqa_distill.ops.pools import CPU_POOL, GPU_POOL

    logs = Path(state.home) / "logs"
    server = _record(state, start_process("prefect-server", server_argv(state.port), env, logs))
    say(f"prefect server starting on {state.ui_url} (log: {server.log})")
    wait_until(lambda: is_healthy(f"{state.api_url}/health"), server, SERVER_START_TIMEOUT_S, "prefect server")
    if offline_teacher:
        argv = [sys.executable, "-m", "vqa_distill.cli", "teacher-server", "--host", LOOPBACK, "--port", str(teacher_port)]
        teacher = _record(state, start_process("teacher-server", argv, env, logs))
        wait_until(lambda: is_healthy(f"http://{LOOPBACK}:{teacher_port}/health"), teacher, 30, "offline teacher server")
        say(f"offline teacher at http://{LOOPBACK}:{teacher_port}/v1 (accepts any API key)")
    gpus = gpu_count() if gpu_worker == "auto" else 0
    if deploy:
        apply_deployments(env, gpu_slots=max(gpus, 1), say=say)
    host = socket.gethostname()
    workers = [("cpu-worker", worker_argv(CPU_POOL, f"cpu-{host}"))]
    if gpus or gpu_worker == "cpu":
        # One flow run at a time: a training run takes the machine's GPUs (or, as a stand-in, its cores).
        workers.append(("gpu-worker", worker_argv(GPU_POOL, f"gpu-{host}", limit=1)))
    elif gpu_worker == "auto":
        say("no GPU found by nvidia-smi: no gpu-pool worker (pass --gpu-worker cpu for a CPU stand-in)")
    for name, argv in workers:
        worker = _record(state, start_process(name, argv, env, logs))
        wait_until(_log_says(worker, WORKER_READY), worker, WORKER_START_TIMEOUT_S, name)
        say(f"{name} polling {argv[argv.index('--pool') + 1]} (log: {worker.log})")


def _record(state: StackState, process: ManagedProcess) -> ManagedProcess:
    """Add a started process to the state file at once, so a failed start can still be stopped."""
    state.processes.append(process)
    state.save()
    return process


def apply_deployments(env: Mapping[str, str], *, gpu_slots: int, say: Callable[[str], None]) -> None:
    """Apply pools, the gpu limit and the deployments against the stack's API (in a child process with its env)."""
    argv = [sys.executable, "-m", "vqa_distill.ops.deploy", "--gpu-slots", str(gpu_slots)]
    done = subprocess.run(argv, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise FatalRunError(f"applying the deployments failed:\n{(done.stdout + done.stderr)[-3000:]}")
    for line in done.stdout.splitlines():
        say(line)


def _shown(env: Mapping[str, str]) -> dict[str, str]:
    """The stack's own settings (not the whole inherited environment, which may hold secrets)."""
    keys = {*SERVER_SETTINGS, "PREFECT_HOME", "PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "VQA_DISTILL_ROOT"}
    return {k: v for k, v in env.items() if k in keys}


def write_env_file(state: StackState) -> Path:
    """Write ``<home>/env.sh`` exporting what a shell needs to use the stack, for ``source``."""
    path = Path(state.home) / ENV_FILE
    path.write_text("".join(f"export {k}='{state.env[k]}'\n" for k in CLIENT_SETTINGS), encoding="utf-8")
    return path


def down(home: Path = DEFAULT_HOME, *, say: Callable[[str], None] = print) -> list[str]:
    """Stop what ``up`` started under ``home`` (workers first, the server last); returns the names stopped."""
    home = home.resolve()
    state = StackState.load(home)
    if state is None:
        say(f"no stack under {home}")
        return []
    stopped = []
    for process in reversed(state.processes):
        if stop_process(process):
            stopped.append(process.name)
            say(f"stopped {process.name} (pid {process.pid})")
        else:
            say(f"{process.name} (pid {process.pid}) was not running")
    (home / STATE_FILE).unlink()
    (home / ENV_FILE).unlink(missing_ok=True)
    return stopped


def status(home: Path = DEFAULT_HOME) -> dict[str, Any] | None:
    """Return the stack's URLs and which of its processes run; None when none was started under ``home``."""
    state = StackState.load(home.resolve())
    if state is None:
        return None
    return {
        "home": state.home,
        "ui_url": state.ui_url,
        "api_url": state.api_url,
        "api_healthy": is_healthy(f"{state.api_url}/health"),
        "processes": {p.name: {"pid": p.pid, "running": p.handle() is not None, "log": p.log} for p in state.processes},
    }


def stack_client_env(home: Path = DEFAULT_HOME) -> dict[str, str]:
    """Return the settings a client needs to use a running stack (API URL, result storage); {} when none runs."""
    state = StackState.load(home.resolve())
    if state is None or not any(p.name == "prefect-server" and p.handle() for p in state.processes):
        return {}
    return {k: state.env[k] for k in CLIENT_SETTINGS if k in state.env}
