"""A Prefect stack in one command: server, pools, deployments and workers; stopped exactly as started.

The local stack (``up``): ``prefect server`` on 127.0.0.1 with the batch settings that keep its
SQLite database ahead of thousands of task runs, the pools and deployments, a ``cpu-pool`` worker
and, where ``nvidia-smi`` lists a GPU (or when a CPU stand-in is asked for), a ``gpu-pool`` worker.

The team stack (``up`` with ``TeamOptions(postgres=True, redis=True, cpu_workers=N)``): the same
server on PostgreSQL with Redis messaging and credentials (team.py), listening beyond loopback, and
N cpu-pool workers, each a host of its own: its own copy of the checkout, its own Prefect home and,
where the machine allows, its own network namespace (netns.py). Everything started is recorded in
``<home>/state.json`` (stack_state.py) at once, so ``down`` stops exactly that, even after a failed ``up``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.ops import netns
from vqa_distill.ops.deploy import DEFAULT_HEARTBEAT_S
from vqa_distill.ops.prefect_server import SERVER_SETTINGS, SERVER_START_TIMEOUT_S, server_argv
from vqa_distill.ops.stack_restart import note_ports
from vqa_distill.ops.stack_secrets import load_secrets
from vqa_distill.ops.stack_state import (
    DEFAULT_HOME,
    ENV_FILE,
    STATE_FILE,
    NetworkState,
    StackState,
    shown_settings,
    stack_client_env,
    write_env_file,
)
from vqa_distill.ops.stack_workers import WorkerSpec, start_worker
from vqa_distill.ops.team import ANY_ADDRESS, ServiceEnv, TeamOptions, start_team_services
from vqa_distill.paths import DEFAULT_PREFECT_PORT as DEFAULT_PORT
from vqa_distill.paths import DEFAULT_TEACHER_PORT, LOOPBACK, REPO_ROOT
from vqa_distill.supervisor import is_healthy, port_is_free, start_process, stop_process, wait_until

OFFLINE_TEACHER_KEY = "sk-offline-teacher"  # the offline server accepts any key; the client needs one
GpuWorker = Literal["auto", "cpu", "none"]
LOCAL_STACK = TeamOptions()  # one cpu worker, SQLite, loopback only
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
# The settings state.json may show (never a secret; the team's secrets stay in their files).
SHOWN = {*SERVER_SETTINGS, "PREFECT_HOME", "PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "VQA_DISTILL_ROOT"}


def stack_env(home: Path, port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of every stack process: this one's, with the stack's Prefect settings on top."""
    env = dict(os.environ if base is None else base)
    env.update(SERVER_SETTINGS)
    env.update(
        {
            "PREFECT_HOME": str(home / "prefect-home"),
            "PREFECT_API_URL": f"http://{LOOPBACK}:{port}/api",
            # Persisted task results (the ask-teacher cache across runs) in one place all workers share.
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "shared" / "results"),
            "VQA_DISTILL_ROOT": str(REPO_ROOT),  # prefect.yaml's pull step: run this checkout
            "PYTHONUNBUFFERED": "1",
            # Flow runs send heartbeats; deploy sizes the automation that marks silent runs Crashed from
            # the same value (a worker whose machine died is noticed after three missed beats).
            HEARTBEAT_ENV: str(DEFAULT_HEARTBEAT_S),
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


def up(
    home: Path = DEFAULT_HOME,
    *,
    port: int = DEFAULT_PORT,
    gpu_worker: GpuWorker = "auto",
    offline_teacher: bool = False,
    teacher_port: int = DEFAULT_TEACHER_PORT,
    deploy: bool = True,
    team: TeamOptions = LOCAL_STACK,
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
            apply_deployments({**os.environ, **current.env, **stack_client_env(home)}, gpu_slots=max(gpu_count(), 1), say=say)
        say(f"Prefect UI: {current.ui_url}")
        return current
    if current is not None:
        stopped = ", ".join(name for name, alive in current.alive().items() if not alive)
        raise ConfigError(
            f"the stack under {home} is partly stopped ({stopped}): `vqa-distill stack restart NAME` for each, "
            "or `vqa-distill stack down` first"
        )
    _check_ports(port, offline_teacher, teacher_port, team)
    home.mkdir(parents=True, exist_ok=True)
    env = stack_env(home, port)
    if offline_teacher:
        env.setdefault("OPENAI_API_KEY", OFFLINE_TEACHER_KEY)
    state = StackState(
        home=str(home), port=port, api_url=env["PREFECT_API_URL"], ui_url=f"http://{LOOPBACK}:{port}",
        env=shown_settings(env, SHOWN),
    )  # fmt: skip
    try:
        _start_all(state, env, gpu_worker=gpu_worker, offline_teacher=offline_teacher, teacher_port=teacher_port,
                   deploy=deploy, team=team, say=say)  # fmt: skip
    except BaseException:
        say("start-up failed: stopping what was started")
        down(home, say=say)
        raise
    write_env_file(state)
    say(f"Prefect UI: {state.ui_url}")
    say(f"point a shell at it: source {Path(state.home) / ENV_FILE}")
    return state


def _check_ports(port: int, offline_teacher: bool, teacher_port: int, team: TeamOptions) -> None:
    """Refuse to start when a port the stack needs is taken (one plain line naming the flag to change)."""
    wanted = [(port, "--port"), *([(teacher_port, "--teacher-port")] if offline_teacher else [])]
    wanted += [(team.postgres_port, "--postgres-port")] if team.postgres else []
    wanted += [(team.redis_port, "--redis-port")] if team.redis else []
    for number, flag in wanted:
        if not port_is_free(number):
            raise ConfigError(f"port {number} is taken: pass {flag} N")


def _start_all(
    state: StackState,
    env: dict[str, str],
    *,
    gpu_worker: GpuWorker,
    offline_teacher: bool,
    teacher_port: int,
    deploy: bool,
    team: TeamOptions,
    say: Callable[[str], None],
) -> None:
    """Start services, server, (offline teacher,) deployments and workers, recording each as it starts."""
    from vqa_distill.ops.pools import CPU_POOL, GPU_POOL

    home = Path(state.home)
    logs = home / "logs"
    gpus = gpu_count() if gpu_worker == "auto" else 0
    gpu_pool_worker = bool(gpus) or gpu_worker == "cpu"
    service_host = _network(state, team, team.cpu_workers + gpu_pool_worker, say)
    services = ServiceEnv(server={}, workers={})
    if team.is_team:
        services = start_team_services(state, load_secrets(home), team, service_host, say)
        state.client_urls = services.clients
    bind = ANY_ADDRESS if team.is_team else LOOPBACK
    server_env = {**env, **services.server}
    server = state.record(start_process("prefect-server", server_argv(state.port, bind), server_env, logs), server_env)
    say(f"prefect server starting on {state.ui_url} (log: {server.log})")
    wait_until(lambda: is_healthy(f"{state.api_url}/health"), server, SERVER_START_TIMEOUT_S, "prefect server")
    if offline_teacher:
        argv = [sys.executable, "-m", "vqa_distill.cli", "teacher-server", "--host", bind, "--port", str(teacher_port)]
        teacher = state.record(start_process("teacher-server", argv, env, logs), env)
        wait_until(lambda: is_healthy(f"http://{LOOPBACK}:{teacher_port}/health"), teacher, 30, "offline teacher server")
        state.services["teacher"] = f"http://{service_host}:{teacher_port}/v1"
        say(f"offline teacher at http://{service_host}:{teacher_port}/v1 (accepts any API key)")
    client_env = {**env, **services.workers}
    if deploy:
        apply_deployments(client_env, gpu_slots=max(gpus, 1), say=say)
    worker_env = {**client_env, "PREFECT_API_URL": f"http://{service_host}:{state.port}/api"}
    specs = [
        WorkerSpec(f"cpu-worker-{i + 1}" if team.cpu_workers > 1 else "cpu-worker", CPU_POOL, team.runs_per_worker)
        for i in range(team.cpu_workers)
    ]
    if gpu_pool_worker:
        # One flow run at a time: a training run takes the machine's GPUs (or, as a stand-in, its cores).
        specs.append(WorkerSpec("gpu-worker", GPU_POOL, limit=1))
    elif gpu_worker == "auto":
        say("no GPU found by nvidia-smi: no gpu-pool worker (pass --gpu-worker cpu for a CPU stand-in)")
    hosts = state.network.hosts if state.network else []
    for index, spec in enumerate(specs):
        host = hosts[index] if index < len(hosts) else None
        start_worker(state, spec, worker_env, own_checkout=team.is_team or team.cpu_workers > 1, host=host, say=say)
    note_ports(state)  # what `stack restart` waits for
    state.save()


def _network(state: StackState, team: TeamOptions, workers: int, say: Callable[[str], None]) -> str:
    """Create one namespace per worker when asked (or, for a team stack, where possible); return the services' address."""
    wanted = team.namespaces == "on" or (team.namespaces == "auto" and team.is_team)
    if not wanted:
        return LOOPBACK
    if not netns.available():
        if team.namespaces == "on":
            raise ConfigError("--namespaces on needs root and `ip netns` (iproute2); use --namespaces off")
        say("network namespaces not available here (needs root and iproute2): workers share this host's network")
        return LOOPBACK
    tag = netns.stack_tag(state.home)
    bridge = netns.bridge_for(tag)
    state.network = NetworkState(bridge=bridge.name, address=bridge.address)
    state.save()
    netns.create_bridge(bridge)
    for index in range(workers):
        host = netns.host_for(tag, bridge, index)
        state.network.hosts.append(
            {"namespace": host.namespace, "veth_host": host.veth_host, "veth_ns": host.veth_ns, "address": host.address}
        )
        state.save()
        netns.create_host(host, bridge)
    say(f"{workers} worker hosts on bridge {bridge.name} ({bridge.address}/24), each in its own network namespace")
    return bridge.address


def apply_deployments(env: Mapping[str, str], *, gpu_slots: int, say: Callable[[str], None]) -> None:
    """Apply pools, the gpu limit and the deployments against the stack's API (in a child process with its env)."""
    argv = [sys.executable, "-m", "vqa_distill.ops.deploy", "--gpu-slots", str(gpu_slots)]
    done = subprocess.run(argv, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise FatalRunError(f"applying the deployments failed:\n{(done.stdout + done.stderr)[-3000:]}")
    for line in done.stdout.splitlines():
        say(line)


def down(home: Path = DEFAULT_HOME, *, say: Callable[[str], None] = print) -> list[str]:
    """Stop what ``up`` started under ``home`` (workers first, the services last), then remove its namespaces."""
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
    if state.network is not None:
        for host in state.network.hosts:
            netns.delete_host(host["namespace"], host["veth_host"])
        netns.delete_bridge(state.network.bridge)
        say(f"removed {len(state.network.hosts)} network namespace(s) and bridge {state.network.bridge}")
    (home / STATE_FILE).unlink()
    (home / ENV_FILE).unlink(missing_ok=True)
    return stopped

