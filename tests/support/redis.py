"""A real Redis for the global rate limit's tests, and a worker process that asks it for admissions.

``redis_server`` starts ``redis-server`` through the project's own ``ops/redis_server.py`` on a free
loopback port with a random password, once per session; tests skip with the reason only where the
Debian package is missing (CI installs it). ``python -m tests.support.redis`` is one worker: a
separate process that takes admissions from a ``GlobalGate`` with a few concurrent callers for a
while and prints each admission's wall-clock time and amount as JSON. The URL reaches it through
the environment, never its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from vqa_distill.ops import redis_server as ops_redis
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.paths import LOOPBACK, REPO_ROOT
from vqa_distill.supervisor import stop_process
from vqa_distill.teacher.ratelimit.buckets import BucketShape
from vqa_distill.teacher.ratelimit.global_gate import REDIS_URL_ENV, GlobalGate


@dataclass(frozen=True)
class RedisServer:
    """A running test Redis: where it listens and its password (a secret the tests check never leaks)."""

    host: str
    port: int
    password: str

    @property
    def url(self) -> str:
        """Return its URL, password included."""
        return ops_redis.redis_url(self.password, self.host, self.port)

    def __repr__(self) -> str:
        return f"RedisServer({self.host}:{self.port})"


def redis_installed() -> bool:
    """Tell whether Debian's redis-server is on this machine."""
    return shutil.which("redis-server") is not None or Path("/usr/bin/redis-server").exists()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One password-protected redis-server for the session, started and stopped by ops/redis_server.py."""
    if not redis_installed():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="vqa-distill-redis-"))
    server = RedisServer(LOOPBACK, free_port(), ops_redis.new_password())
    process = ops_redis.start_redis(folder / "data", server.port, server.password, folder / "logs")
    try:
        yield server
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis' URL, password included."""
    return redis_server.url


# ----------------------------------------------------------------------------- checking admissions


def conformance_excess(times: Sequence[float], amounts: Sequence[float], shape: BucketShape) -> float:
    """Replay admissions through an ideal leaky bucket; return the worst overflow (<= 0: all conform).

    An admission conforms when the bucket held at most ``capacity - amount`` then (an amount above
    capacity: when it was empty), which bounds every window W by capacity + rate x W.
    """
    order = sorted(range(len(times)), key=lambda i: times[i])
    level, last, worst = 0.0, None, float("-inf")
    for i in order:
        if last is not None:
            level = max(0.0, level - (times[i] - last) * shape.rate_per_second)
        last = times[i]
        worst = max(worst, level - max(0.0, shape.capacity - amounts[i]))
        level += amounts[i]
    return worst


def admitted_between(times: Sequence[float], start: float, end: float) -> int:
    """Count admissions in [start, end)."""
    return sum(1 for t in times if start <= t < end)


# ----------------------------------------------------------------------------- worker processes


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process does: which limit, which amounts (cycled), when and for how long."""

    model: str
    rpm: int
    tpm: int
    amounts: tuple[int, ...] = (1,)
    start_at: float = 0.0  # wall-clock time to begin (workers start together despite start-up skew)
    duration_s: float = 5.0
    callers: int = 4  # concurrent acquire() loops in the process

    def argv(self) -> list[str]:
        """Return the worker's command (no secret in it)."""
        return [
            sys.executable, "-m", "tests.support.redis", "--model", self.model, "--rpm", str(self.rpm),
            "--tpm", str(self.tpm), "--amounts", ",".join(map(str, self.amounts)), "--start-at", repr(self.start_at),
            "--duration", repr(self.duration_s), "--callers", str(self.callers),
        ]  # fmt: skip


def start_workers(url: str, plans: Sequence[WorkerPlan]) -> list[subprocess.Popen[str]]:
    """Start one process per plan, each given the Redis URL in its environment."""
    env = {**os.environ, REDIS_URL_ENV: url}
    return [
        subprocess.Popen(plan.argv(), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for plan in plans
    ]


def collect(workers: Sequence[subprocess.Popen[str]], timeout: float = 120) -> list[list[tuple[float, int]]]:
    """Wait for the workers; return each one's admissions as (wall time, amount)."""
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, err[-2000:]
        results.append([(float(t), int(a)) for t, a in json.loads(out)])
    return results


async def _work(plan: WorkerPlan, url: str) -> list[tuple[float, int]]:
    gate = await GlobalGate.connect(url, base_url="http://limit.test/v1", model=plan.model, rpm=plan.rpm, tpm=plan.tpm)
    admissions: list[tuple[float, int]] = []
    await asyncio.sleep(max(0.0, plan.start_at - time.time()))
    stop_at = time.time() + plan.duration_s

    async def caller(offset: int) -> None:
        turn = offset
        while time.time() < stop_at:
            amount = plan.amounts[turn % len(plan.amounts)]
            await gate.acquire(amount)
            if time.time() < stop_at:
                admissions.append((time.time(), amount))
            turn += plan.callers

    try:
        await asyncio.gather(*(caller(i) for i in range(plan.callers)))
    finally:
        await gate.aclose()
    return admissions


def main(argv: Sequence[str] | None = None) -> None:
    """Run one worker (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--rpm", type=int, required=True)
    parser.add_argument("--tpm", type=int, required=True)
    parser.add_argument("--amounts", default="1")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=4)
    args = parser.parse_args(argv)
    plan = WorkerPlan(
        args.model, args.rpm, args.tpm, tuple(int(a) for a in args.amounts.split(",")), args.start_at,
        args.duration, args.callers,
    )  # fmt: skip
    print(json.dumps(asyncio.run(_work(plan, os.environ[REDIS_URL_ENV]))))


if __name__ == "__main__":
    main()
