"""The team stack end to end: 600 images in 3 shards on 3 workers, PostgreSQL + Redis, faults, a killed worker.

Everything is real: ``vqa-distill stack up --postgres --redis --cpu-workers 3`` (each worker in its
own network namespace where root can make one: asserted), the offline teacher counting every request
and billing, as a real API does, the answers its clients hung up on; the generate command run as a
user runs it with ``--shards 3``. The run's RPM is below what the three workers could ask, so the
global limit in Redis binds. Mid-run one worker and the shard it runs are killed with SIGKILL, as when
a machine dies; the run must still complete, paying twice for at most the killed shard's requests in
flight, with no 60-second window over the RPM at the teacher. A second run from a shell that sourced
``env.sh``, with a relative ``--out``, reaches the same ledger and builds the same dataset without
asking anything. Then ``failed`` and ``retry-failed`` work across the shards, and nothing in the stack
answers a stranger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.helpers import REPO_ROOT, chat_requests, make_images
from tests.support.team_fixtures import TeamStack, team_stack  # noqa: F401  (the fixture)

IMAGES = 600
BAD_IMAGES = 6  # refused with a 400 by the teacher until the faults are cleared
BAD_SIZE = (72, 40)
RPM = 300  # the teacher's limit, and the run's: the global gate must hold it across three workers
CONCURRENCY = 8  # per shard: 3 x 8 in flight at ~0.4 s each could ask ~3,600 a minute, far above RPM
RUN_TIMEOUT_S = 600

pytestmark = pytest.mark.timeout(1200)


def _max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most events in any ``window``-second interval (two pointers over sorted times)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _shard_runs(team: TeamStack, parent_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"parent_flow_run_id": {"any_": [parent_id]}}, "flows": {"name": {"any_": ["teacher-shard"]}}}
    runs: list[dict[str, Any]] = team.api("POST", "/flow_runs/filter", body)
    return runs


def _cli(team: TeamStack, *args: str) -> subprocess.Popen[str]:
    """Run ``vqa-distill`` against the stack, the shared ledger named in the environment (not in argv: ps shows argv)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vqa_distill.cli", *args], cwd=REPO_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**_base_env(), **team.env, "VQA_DISTILL_LEDGER_URL": _ledger_url(team)},
    )  # fmt: skip


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _kill_worker_running(team: TeamStack, runs: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """SIGKILL the worker (and its flow-run processes) that runs one of ``runs``: a machine that dies."""
    for run in runs:
        pid = int(str(run.get("infrastructure_pid") or "0").rsplit(":", 1)[-1] or 0)
        for worker in team.workers():
            try:
                tree = psutil.Process(worker["pid"])
                members = [tree, *tree.children(recursive=True)]
            except psutil.Error:
                continue
            if pid and any(m.pid == pid for m in members):
                for member in members:
                    member.send_signal(signal.SIGKILL)
                return worker["name"], run
    raise AssertionError(f"no worker runs any of {[r['id'] for r in runs]} (pids {[r.get('infrastructure_pid') for r in runs]})")


def test_team_stack_shards_survive_a_killed_worker_and_pay_nothing_twice(team_stack: TeamStack, tmp_path: Path) -> None:  # noqa: F811
    team = team_stack
    shared = team.home / "shared"
    images = shared / "images"
    make_images(images, IMAGES - BAD_IMAGES, prefix="photo")
    make_images(images, BAD_IMAGES, prefix="bad", size=BAD_SIZE)
    out = shared / "runs" / "team"
    team.teacher("POST", "/_admin/reset")
    team.teacher("PUT", "/_admin/limits", {"rpm": RPM, "tpm": 50_000_000})
    team.teacher("PUT", "/_admin/faults", [
        {"kind": "400", "match_image_size": f"{BAD_SIZE[0]}x{BAD_SIZE[1]}"},  # refused: listed, retried later
        {"kind": "503", "probability": 0.05, "times": 1},  # overloaded now and then: retried by the task
    ])  # fmt: skip
    team.teacher("PUT", "/_admin/latency", {"latency_s": 0.3, "jitter_s": 0.2})
    team.teacher("PUT", "/_admin/billing", {"bill_hung_up": True})  # a killed worker's answers are paid anyway
    _assert_workers_in_namespaces(team)

    # The parent runs here, as a user runs it; its three shards run on the workers.
    base = team.teacher_for_workers
    parent = _cli(
        team, "generate", "--images", str(images), "--out", str(out), "--base-url", base, "--prompt", "Describe it.",
        "--shards", "3", "--rpm", str(RPM), "--tpm", "50000000", "--concurrency", str(CONCURRENCY),
        "--retry-delay", "0.1", "--no-progress",
    )  # fmt: skip
    parent_id = _wait_for_parent(team, parent)
    # Once every shard is asking and some answers are in, a worker dies with the shard it runs.
    deadline = time.monotonic() + 180
    while True:
        running = [r for r in _shard_runs(team, parent_id) if r["state_type"] == "RUNNING"]
        answered = sum(1 for r in chat_requests(team.teacher("GET", "/_admin/stats")) if r["status"] == 200)
        if len(running) == 3 and answered >= 120:
            break
        assert parent.poll() is None, parent.stdout.read() if parent.stdout else ""
        assert time.monotonic() < deadline, f"shards not all running: {[r['state_name'] for r in _shard_runs(team, parent_id)]}"
        time.sleep(0.5)
    killed_worker, killed_run = _kill_worker_running(team, running)

    output, _ = parent.communicate(timeout=RUN_TIMEOUT_S)
    assert parent.returncode == 2, output  # finished; the 6 refused images failed
    runs = _shard_runs(team, parent_id)
    assert len(runs) >= 4, f"the killed shard was not run again: {[(r['name'], r['state_name']) for r in runs]}"
    killed_state = team.api("GET", f"/flow_runs/{killed_run['id']}")["state_type"]
    assert killed_state == "CRASHED", f"{killed_worker}'s shard run ended {killed_state}, not CRASHED"

    stats = team.teacher("GET", "/_admin/stats")
    requests = chat_requests(stats)
    paid = Counter(r["fingerprints"][0] for r in requests if r["billed"])
    assert len(paid) == IMAGES - BAD_IMAGES, f"{len(paid)} images answered, not {IMAGES - BAD_IMAGES}"
    # The physical limit: what the killed shard had in flight was computed (and billed) for a client that
    # died; its next run asks those again. Nothing else is ever paid twice.
    twice = [f for f, n in paid.items() if n > 1]
    assert max(paid.values()) <= 2 and len(twice) <= CONCURRENCY, f"{len(twice)} answers paid twice: {twice[:5]}"
    hung_up = sum(1 for r in requests if r["status"] == 499 and r["billed"])
    assert len(twice) <= hung_up, f"{len(twice)} paid twice, only {hung_up} hung-up answers billed"
    assert stats["totals"]["rate_limited"] == 0
    assert stats["totals"]["by_fault"].get("503", 0) > 0  # the transient faults happened, and were retried
    busiest = _max_in_window([r["t"] for r in requests])
    assert RPM * 0.8 <= busiest <= RPM, f"busiest 60 s held {busiest} requests: the global limit of {RPM} did not bind"

    # failed lists the refused images across the shards; retry-failed re-asks only them.
    failed = subprocess.run(
        [sys.executable, "-m", "vqa_distill.cli", "failed", parent_id, "--json"], cwd=REPO_ROOT, text=True,
        capture_output=True, env={**_base_env(), **team.env, "VQA_DISTILL_LEDGER_URL": _ledger_url(team)}, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 2, failed.stdout + failed.stderr
    listed = sorted(image["file"] for image in json.loads(failed.stdout)["images"])
    assert listed == [f"bad_{i:03d}.png" for i in range(BAD_IMAGES)]
    team.teacher("PUT", "/_admin/faults", [])
    before = len(requests)
    retry = _cli(team, "retry-failed", parent_id)
    retry_output, _ = retry.communicate(timeout=RUN_TIMEOUT_S)
    assert retry.returncode == 0, retry_output
    asked_again = chat_requests(team.teacher("GET", "/_admin/stats"))[before:]
    assert sorted(r["image_sizes"][0] for r in asked_again) == [f"{BAD_SIZE[0]}x{BAD_SIZE[1]}"] * BAD_IMAGES

    # A shell that sourced env.sh, a relative --out: the same ledger, so nothing is asked and the dataset is the same.
    dataset_before = (out / "train.jsonl").read_text()
    answered_before = len(chat_requests(team.teacher("GET", "/_admin/stats")))
    again = subprocess.run(
        ["bash", "-c", f"source {team.home / 'env.sh'} && exec {sys.executable} -m vqa_distill.cli generate "
         f"--images images --out runs/team --base-url {base} --prompt 'Describe it.' --shards 3 --rpm {RPM} "
         "--tpm 50000000 --no-progress"],
        cwd=shared, text=True, capture_output=True, timeout=RUN_TIMEOUT_S,
        env={**{k: v for k, v in _base_env().items() if not k.startswith(("PREFECT_", "VQA_DISTILL_"))},
             "OPENAI_API_KEY": team.env["OPENAI_API_KEY"]},
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert (out / "train.jsonl").read_text() == dataset_before
    assert len(chat_requests(team.teacher("GET", "/_admin/stats"))) == answered_before, "asked again"

    # The ledger is in PostgreSQL: every image answered once, in the run folder's namespace.
    from vqa_distill.teacher.ledger.records import Ledger

    with Ledger(out, url=_ledger_url(team)) as ledger:
        answered_keys = ledger.done_keys()
    assert len(answered_keys) == IMAGES
    assert not (out / "ledger.sqlite").exists()


def test_team_stack_refuses_strangers(team_stack: TeamStack) -> None:  # noqa: F811
    team = team_stack
    api = httpx.post(f"{team.api_url}/flow_runs/filter", json={}, timeout=30)
    assert api.status_code == 401
    wrong = httpx.post(f"{team.api_url}/flow_runs/filter", json={}, auth=("vqa", "wrong"), timeout=30)
    assert wrong.status_code == 401
    assert team.api("POST", "/flow_runs/filter", {"limit": 1}) is not None  # with the credentials: allowed

    import psycopg
    import redis

    redis_port = int(team.state["services"]["redis"].split(":")[1].split()[0])
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_port).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_port, password="wrong").ping()
    assert redis.Redis(host="127.0.0.1", port=redis_port, password=team.secret("redis-password")).ping()

    pg_port = int(team.state["services"]["postgresql"].split(":")[1].split()[0])
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="ledger", connect_timeout=10).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=pg_port, user="postgres", password="wrong", dbname="ledger").close()
    # The workers' password opens the ledger and nothing else (Prefect's database has a role of its own).
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(host="127.0.0.1", port=pg_port, user="vqa_ledger", password=team.secret("ledger-password"),
                        dbname="prefect", connect_timeout=10).close()  # fmt: skip

    # Secrets live in files only their owner reads, and the state file, env.sh and logs hold none.
    secret_files = list((team.home / "secrets").iterdir())
    assert secret_files and all(f.stat().st_mode & 0o077 == 0 for f in secret_files)
    secrets = [f.read_text().strip() for f in secret_files]
    for text_file in [team.home / "state.json", team.home / "env.sh", *(team.home / "logs").glob("*.log")]:
        text = text_file.read_text(errors="replace")
        leaked = [s for s in secrets if s.split(":")[-1] in text]
        assert not leaked, f"a secret is in {text_file}"


def _assert_workers_in_namespaces(team: TeamStack) -> None:
    """Where root can make network namespaces, each worker runs in one of its own (not this host's network)."""
    probe = subprocess.run(["ip", "netns", "add", "vqa-probe-ns"], capture_output=True)
    if probe.returncode != 0:
        return  # not root, or no iproute2: `--namespaces auto` runs workers as plain processes
    subprocess.run(["ip", "netns", "delete", "vqa-probe-ns"], capture_output=True)
    state = json.loads((team.home / "state.json").read_text())
    assert state.get("network") and len(state["network"]["hosts"]) >= len(team.workers()), state.get("network")
    ours = os.readlink("/proc/self/ns/net")
    theirs = {os.readlink(f"/proc/{worker['pid']}/ns/net") for worker in team.workers()}
    assert ours not in theirs and len(theirs) == len(team.workers()), f"workers' networks {theirs}, ours {ours}"


def _ledger_url(team: TeamStack) -> str:
    pg_port = int(team.state["services"]["postgresql"].split(":")[1].split()[0])
    return f"postgresql+psycopg://vqa_ledger:{team.secret('ledger-password')}@127.0.0.1:{pg_port}/ledger"


def _crash(team: TeamStack, name: str) -> None:
    """SIGKILL one of the stack's processes, as a crash would end it (its pid read from the state now)."""
    state = json.loads((team.home / "state.json").read_text())
    [pid] = [p["pid"] for p in state["processes"] if p["name"] == name]
    psutil.Process(pid).send_signal(signal.SIGKILL)
    psutil.Process(pid).wait(15)


def _wait_for_parent(team: TeamStack, parent: subprocess.Popen[str]) -> str:
    """Return the id of the generate run the CLI started (the newest one)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = team.api("POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["generate"]}}, "sort": "START_TIME_DESC", "limit": 1})
        if runs and runs[0]["state_type"] in ("RUNNING", "COMPLETED", "FAILED"):
            return str(runs[0]["id"])
        if parent.poll() is not None:
            raise AssertionError(parent.stdout.read() if parent.stdout else "generate exited")
        time.sleep(0.5)
    raise AssertionError("the generate run did not start")


def test_team_stack_run_survives_restarts_of_its_server_and_database(team_stack: TeamStack) -> None:  # noqa: F811
    """The Prefect server, then PostgreSQL, restarted mid-run: the run completes, each image paid once."""
    from vqa_distill.ops.stack_restart import restart

    team = team_stack
    images = team.home / "shared" / "restart-images"
    count = 240
    make_images(images, count, prefix="restart")
    team.teacher("POST", "/_admin/reset")
    team.teacher("PUT", "/_admin/faults", [])
    team.teacher("PUT", "/_admin/latency", {"latency_s": 0.4, "jitter_s": 0.2})
    parent = _cli(
        team, "generate", "--images", str(images), "--out", str(team.home / "shared" / "runs" / "restarts"),
        "--base-url", team.teacher_for_workers, "--prompt", "Describe it.", "--shards", "2", "--concurrency", "4",
        "--rpm", str(RPM), "--tpm", "50000000", "--retry-delay", "0.5", "--no-progress",
    )  # fmt: skip

    def answered() -> int:
        assert parent.poll() is None, parent.stdout.read() if parent.stdout else ""
        return sum(1 for r in chat_requests(team.teacher("GET", "/_admin/stats")) if r["status"] == 200)

    for name, after in (("prefect-server", 40), ("postgres", 120)):
        deadline = time.monotonic() + 300
        while answered() < after:
            assert time.monotonic() < deadline, f"only {answered()} answers before restarting {name}"
            time.sleep(0.3)
        if name == "prefect-server":  # crashed, not stopped: the restart has only what `up` recorded
            _crash(team, name)
        restart(team.home, name, say=lambda line: None)
    output, _ = parent.communicate(timeout=RUN_TIMEOUT_S)
    assert parent.returncode == 0, output
    paid = Counter(r["fingerprints"][0] for r in chat_requests(team.teacher("GET", "/_admin/stats")) if r["status"] == 200)
    assert len(paid) == count and max(paid.values()) == 1, f"{len(paid)} answered, most paid for one image {max(paid.values())}"
