"""The global rate limit on a real redis-server: its bucket math across processes, its keys, its secrets."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support.redis import (
    RedisServer,
    WorkerPlan,
    admitted_between,
    collect,
    conformance_excess,
    redis_installed,
    start_workers,
)
from vqa_distill.errors import ConfigError, FatalRunError, TransientTeacherError
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.redis_server import redis_argv, redis_conf, running_redis, write_redis_conf
from vqa_distill.ops.redis_server import redis_url as make_url
from vqa_distill.teacher.ratelimit.buckets import BucketShape
from vqa_distill.teacher.ratelimit.gate import RateGate
from vqa_distill.teacher.ratelimit.global_gate import GlobalGate, limit_key, redis_location

TIMING_SLACK_S = 0.4  # a busy 2-core machine (the CI suite beside it) may wake a sleeper this late (unshared, 3 workers overshoot by ~75)
needs_redis = pytest.mark.skipif(not redis_installed(), reason="redis-server is not installed (apt-get install redis-server)")


# ----------------------------------------------------------------------------- the server's config


def test_the_password_is_in_the_private_config_never_on_the_command_line(tmp_path: Path) -> None:
    password = "p" * 20 + "-secret_1"
    conf = redis_conf(7001, password, data_dir=tmp_path)
    assert f"requirepass {password}" in conf.splitlines()
    assert {"port 7001", "bind 127.0.0.1", "protected-mode yes", 'save ""', "appendonly no"} <= set(conf.splitlines())
    path = write_redis_conf(tmp_path, 7001, password)
    assert path.stat().st_mode & 0o777 == 0o600
    if redis_installed():
        assert not any(password in arg for arg in redis_argv(path))


def test_a_password_the_config_cannot_hold_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        redis_conf(7001, "has space and 'quote' in it", data_dir=tmp_path)
    assert "quote" not in str(caught.value)


def test_urls_quote_the_password_and_messages_name_only_host_and_port() -> None:
    url = make_url("a/b@c:d" + "x" * 16, "10.0.0.5", 6380, 1)
    assert redis.Redis.from_url(url).connection_pool.connection_kwargs["password"] == "a/b@c:d" + "x" * 16
    assert redis_location(url) == "10.0.0.5:6380"
    assert limit_key(None, "gpt-4o-mini") == limit_key("https://api.openai.com/v1/", "gpt-4o-mini")
    assert limit_key(None, "gpt-4o-mini") != limit_key(None, "gpt-4o")
    assert limit_key("http://a/v1", "m") != limit_key("http://b/v1", "m")


# ----------------------------------------------------------------------------- authentication and failures


def test_a_connection_without_the_password_is_refused(redis_server: RedisServer) -> None:
    anonymous = redis.Redis(host=redis_server.host, port=redis_server.port)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError), match=r"(?i)noauth|authenticat"):
        anonymous.set("vqa-distill:probe", "1")
    anonymous.close()


def test_a_wrong_password_stops_the_run_naming_host_and_port(redis_server: RedisServer) -> None:
    wrong = "wrong-" + "w" * 20
    url = make_url(wrong, redis_server.host, redis_server.port)
    with pytest.raises(FatalRunError) as caught:
        asyncio.run(GlobalGate.connect(url, base_url=None, model="m", rpm=60, tpm=1000))
    assert f"{redis_server.host}:{redis_server.port}" in str(caught.value)
    assert "password" in str(caught.value) and wrong not in _everything_about(caught.value)


def test_an_unreachable_redis_at_start_stops_the_run_without_the_password() -> None:
    password = "never-shown-" + "s" * 16
    port = free_port()
    with pytest.raises(FatalRunError) as caught:
        asyncio.run(GlobalGate.connect(make_url(password, "127.0.0.1", port), base_url=None, model="m", rpm=60, tpm=1000))
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert password not in _everything_about(caught.value)


@needs_redis
def test_redis_gone_mid_run_fails_the_request_as_transient_without_the_password(tmp_path: Path) -> None:
    password = "mid-run-" + "q" * 20
    port = free_port()

    async def scenario(url: str, stop: Callable[[], None]) -> BaseException:
        gate = await GlobalGate.connect(url, base_url=None, model="m", rpm=600, tpm=100_000)
        assert await gate.reserve(10) == 0.0
        stop()
        try:
            await gate.reserve(10)
        except TransientTeacherError as exc:
            return exc
        finally:
            await gate.aclose()
        raise AssertionError("a reservation succeeded with Redis stopped")

    with running_redis(tmp_path / "data", tmp_path / "logs", port, password) as url:
        client = redis.Redis.from_url(url)

        def stop() -> None:
            client.shutdown(nosave=True)  # the server goes away as if its machine had

        error = asyncio.run(scenario(url, stop))
        client.close()
    assert f"127.0.0.1:{port}" in str(error) and password not in _everything_about(error)


# ----------------------------------------------------------------------------- one limit, several processes


@needs_redis
def test_three_processes_share_one_request_limit_and_a_survivor_takes_it_all(redis_url: str) -> None:
    rpm = 600
    shape = BucketShape.for_limit(rpm)
    start = time.time() + 3.0
    plans = [WorkerPlan("requests-" + str(start), rpm, 10_000_000, start_at=start, duration_s=d) for d in (10.0, 4.0, 4.0)]
    alone, *others = collect(start_workers(redis_url, plans))
    times = [t for worker in (alone, *others) for t, _ in worker]
    assert conformance_excess(times, [1.0] * len(times), shape) <= shape.rate_per_second * TIMING_SLACK_S
    together_from = max(worker[0][0] for worker in (alone, *others)) + 1.0
    together_to = min(worker[-1][0] for worker in others)
    assert together_to - together_from >= 1.5, "the workers did not overlap long enough to measure"
    together = admitted_between(times, together_from, together_to) / (together_to - together_from)
    assert together >= 0.9 * rpm / 60
    assert all(admitted_between([t for t, _ in w], together_from, together_to) > 0 for w in (alone, *others))
    # The stopped workers' last bookings (4 callers each, up to ~1.2 s ahead) go unused: measure after them.
    alone_from, alone_to = together_to + 2.0, alone[-1][0]
    by_itself = admitted_between([t for t, _ in alone], alone_from, alone_to) / (alone_to - alone_from)
    assert by_itself >= 0.9 * rpm / 60  # no static split: the stopped workers' share is not lost


@needs_redis
def test_token_amounts_over_capacity_go_one_at_a_time_within_the_token_limit(redis_url: str) -> None:
    tpm = 6_000
    shape = BucketShape.for_limit(tpm)  # capacity 100 tokens, ~98 tokens/s
    big = 250
    start = time.time() + 3.0
    plans = [
        WorkerPlan("tokens-" + str(start), 1_000_000, tpm, amounts=(30, big, 30), start_at=start, duration_s=6.0, callers=3)
        for _ in range(2)
    ]
    admissions = sorted(a for worker in collect(start_workers(redis_url, plans)) for a in worker)
    times, amounts = [t for t, _ in admissions], [float(a) for _, a in admissions]
    assert amounts.count(big) >= 2 and len(admissions) >= 6
    assert conformance_excess(times, amounts, shape) <= shape.rate_per_second * TIMING_SLACK_S
    for i, (t, amount) in enumerate(admissions[:-1]):
        if amount == big:  # it left an empty bucket holding 250: the next one waits for it to drain
            # to room for itself (capacity - next), or to empty when it is over capacity too (big after big).
            gap = admissions[i + 1][0] - t
            room = max(0.0, shape.capacity - amounts[i + 1])
            assert gap >= (big - room) / shape.rate_per_second - TIMING_SLACK_S
    span = times[-1] - times[0]
    assert sum(amounts[1:]) <= shape.capacity + shape.rate_per_second * (span + TIMING_SLACK_S) + big


# ----------------------------------------------------------------------------- the local gate's hook


@needs_redis
def test_two_local_gates_with_one_outer_limit_stay_within_it_and_forward_usage(redis_url: str) -> None:
    rpm = 300
    model = f"hook-{time.time()}"

    async def scenario() -> tuple[list[float], float, int]:
        outers = [await GlobalGate.connect(redis_url, base_url=None, model=model, rpm=rpm, tpm=10**7) for _ in range(2)]
        gates = [RateGate(rpm, 10**7, outer=outer) for outer in outers]
        times: list[float] = []

        async def ask(gate: RateGate) -> None:
            for _ in range(12):
                await gate.acquire(100)
                times.append(time.time())

        await asyncio.gather(*(ask(gate) for gate in gates for _ in range(3)))
        client, key = outers[0]._client, outers[0].key
        before_at, before = (float(v or 0) for v in await client.hmget(key, "at", "tokens"))
        await gates[1].settle(100, 5_100)  # usage said 5,000 more than the estimate
        after_at, after = (float(v or 0) for v in await client.hmget(key, "at", "tokens"))
        drained = max(0.0, before - (after_at - before_at) / 1e6 * BucketShape.for_limit(10**7).rate_per_second)
        ttl = await client.pttl(key)
        for outer in outers:
            await outer.aclose()
        return times, after - drained, ttl

    times, charged, ttl = asyncio.run(scenario())
    shape = BucketShape.for_limit(rpm)
    assert len(times) == 72
    assert conformance_excess(times, [1.0] * len(times), shape) <= shape.rate_per_second * TIMING_SLACK_S
    assert (len(times) - shape.capacity) / (max(times) - min(times)) >= 0.9 * rpm / 60
    assert charged == pytest.approx(5_000)
    assert 0 < ttl <= 61_000 + 1_000  # state expires once drained, plus a minute


def _everything_about(error: BaseException) -> str:
    """Everything a log could show of an error: its text, repr, args and formatted traceback."""
    return " ".join([str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))])
