"""Benchmark the global rate limit: Redis (``GlobalGate``) against Prefect's ``rate_limit``, on loopback.

Rows, all in one run on this machine:
- ``redis PING``: the round trip itself, the floor any Redis-based limit pays (baseline);
- ``GlobalGate.reserve``: one Lua script per request (both buckets, atomic), limits far away so
  nothing waits: what the limit costs a request;
- ``prefect rate_limit``: ``prefect.concurrency.asyncio.rate_limit`` on a global concurrency limit
  with slot decay, on a local SQLite Prefect server started for the run (``ops/prefect_server.py``).
For each: latency p50/p99, client CPU and server CPU per call. Then the rate each one achieves for a
limit of ``--rate`` per second with ``--callers`` concurrent callers for ``--seconds``: how much of
the configured limit it really lets through.

Run: .venv/bin/python bench/global_limit.py [--calls 2000] [--prefect-calls 200] [--rate 10] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vqa_distill.ops.prefect_server import SERVER_SETTINGS, free_port, start_server  # noqa: E402
from vqa_distill.ops.redis_server import new_password, redis_url, start_redis  # noqa: E402
from vqa_distill.paths import LOOPBACK  # noqa: E402
from vqa_distill.supervisor import stop_process  # noqa: E402
from vqa_distill.teacher.ratelimit.global_gate import GlobalGate  # noqa: E402

Row = tuple[str, int, float, float, float, float]


def cpu_of(pid: int) -> float:
    """Return the CPU seconds a process and its children have used."""
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


async def timed(name: str, calls: int, call: Callable[[], Awaitable[object]], server_pid: int) -> Row:
    """Call ``call`` ``calls`` times one after another; return latency percentiles and CPU per call."""
    for _ in range(min(20, calls)):  # warm connections and caches
        await call()
    latencies = []
    cpu_client, cpu_server = time.process_time(), cpu_of(server_pid)
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    cpu_client, cpu_server = time.process_time() - cpu_client, cpu_of(server_pid) - cpu_server
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return name, calls, statistics.median(latencies) * 1e3, p99 * 1e3, cpu_client / calls * 1e3, cpu_server / calls * 1e3


async def achieved(acquire: Callable[[], Awaitable[object]], callers: int, seconds: float) -> float:
    """Return the admissions per second ``acquire`` lets through with ``callers`` concurrent loops."""
    stop_at = time.monotonic() + seconds
    times: list[float] = []

    async def loop() -> None:
        while time.monotonic() < stop_at:
            await acquire()
            times.append(time.monotonic())

    await asyncio.gather(*(loop() for _ in range(callers)))
    inside = sorted(t for t in times if t < stop_at)
    skip = 1.0  # the first second spends the bucket's burst
    steady = [t for t in inside if t >= inside[0] + skip]
    return len(steady) / (stop_at - inside[0] - skip) if steady else 0.0


async def redis_rows(url: str, pid: int, args: argparse.Namespace) -> tuple[list[Row], float]:
    """Measure PING, GlobalGate.reserve, and the rate GlobalGate achieves."""
    fast = await GlobalGate.connect(url, base_url=None, model=f"bench-{uuid.uuid4()}", rpm=10**9, tpm=10**12)
    rows = [
        await timed("redis PING (baseline)", args.calls, fast._client.ping, pid),
        await timed("GlobalGate.reserve", args.calls, lambda: fast.reserve(500), pid),
    ]
    await fast.aclose()
    paced = await GlobalGate.connect(url, base_url=None, model=f"bench-{uuid.uuid4()}", rpm=int(args.rate * 60), tpm=10**12)
    rate = await achieved(lambda: paced.acquire(1), args.callers, args.seconds)
    await paced.aclose()
    return rows, rate


async def prefect_rows(pid: int, args: argparse.Namespace) -> tuple[list[Row], float]:
    """Measure Prefect's rate_limit on two global concurrency limits: one far away, one at ``--rate``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.asyncio import rate_limit

    fast, paced = f"bench-fast-{uuid.uuid4().hex[:8]}", f"bench-paced-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=fast, limit=10**6, slot_decay_per_second=10**5)
        )
        # Prefect's documented shape of a rate limit: limit = burst, slots decay at the rate.
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=paced, limit=max(1, int(args.rate)), slot_decay_per_second=args.rate)
        )
    rows = [await timed("prefect rate_limit", args.prefect_calls, lambda: rate_limit(fast), pid)]
    rate = await achieved(lambda: rate_limit(paced), args.callers, args.seconds)
    return rows, rate


def main() -> None:
    """Start Redis and a Prefect server, measure both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--prefect-calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="limit per second for the achieved-rate rows")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--skip-prefect", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vqa-bench-limit-"))
    password, port = new_password(), free_port()
    redis_process = start_redis(work / "redis", port, password, work / "logs")
    try:
        rows, redis_rate = asyncio.run(redis_rows(redis_url(password, LOOPBACK, port), redis_process.pid, args))
    finally:
        stop_process(redis_process)
    prefect_rate = None
    if not args.skip_prefect:
        prefect_port = free_port()
        env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home"), **SERVER_SETTINGS}
        os.environ.update({"PREFECT_HOME": env["PREFECT_HOME"], "PREFECT_API_URL": f"http://{LOOPBACK}:{prefect_port}/api"})
        server = start_server(prefect_port, env, work / "logs")
        try:
            more, prefect_rate = asyncio.run(prefect_rows(server.pid, args))
            rows += more
        finally:
            stop_process(server)

    print(f"{'what':<24}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'client CPU ms':>15}{'server CPU ms':>15}")
    for name, calls, p50, p99, client_cpu, server_cpu in rows:
        print(f"{name:<24}{calls:>7}{p50:>9.2f}{p99:>9.2f}{client_cpu:>15.3f}{server_cpu:>15.3f}")
    print(f"\nachieved rate, limit {args.rate:g}/s, {args.callers} callers, {args.seconds:g} s (after the first second):")
    print(f"  GlobalGate          {redis_rate:6.2f}/s  ({redis_rate / args.rate:.0%} of the limit; its steady share is"
          f" {1 - 1 / 60:.0%} by design)")  # fmt: skip
    if prefect_rate is not None:
        print(f"  prefect rate_limit  {prefect_rate:6.2f}/s  ({prefect_rate / args.rate:.0%} of the limit)")


if __name__ == "__main__":
    main()
