"""The rate gate keeps requests and tokens per minute under the limits, measured at the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.teacher.ratelimit.buckets import BucketShape
from vqa_distill.teacher.ratelimit.gate import RateGate


def max_excess(times: list[float], amounts: list[float], shape: BucketShape) -> float:
    """Largest amount admitted in any window beyond what the bucket shape allows (<= 0 when within)."""
    worst = float("-inf")
    for start in range(len(times)):
        admitted = 0.0
        for end in range(start, len(times)):
            admitted += amounts[end]
            allowed = shape.capacity + shape.rate_per_second * (times[end] - times[start])
            worst = max(worst, admitted - allowed)
    return worst


def test_bucket_shape_never_admits_more_than_the_limit_in_a_minute() -> None:
    for limit in (60, 500, 3000, 30_000, 200_000):
        shape = BucketShape.for_limit(limit)
        assert shape.capacity + shape.rate_per_second * 60 <= limit + 1e-9
        assert shape.rate_per_second * 60 >= 0.95 * limit or limit < 100


def test_gate_pauses_everyone_for_retry_after() -> None:
    async def scenario() -> float:
        gate = RateGate(rpm=60_000, tpm=10_000_000)
        gate.pause(0.3)
        started = time.monotonic()
        await asyncio.gather(*(gate.acquire(10) for _ in range(5)))
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.29


def test_requests_per_minute_stay_under_the_limit(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    rpm = 120
    make_images(tmp_path / "images", 14)
    params = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url, rpm=rpm, concurrency=14)
    run_generate_flow(params, show_progress=False)
    times = sorted(r["t"] for r in chat_requests(teacher.stats()))
    assert len(times) == 14
    shape = BucketShape.for_limit(rpm)
    assert max_excess(times, [1.0] * len(times), shape) <= 0.5  # at most timing noise, never a whole request
    achieved = (len(times) - shape.capacity) / (times[-1] - times[0])
    assert achieved >= 0.85 * rpm / 60  # and the limit is used, not wasted


def test_tokens_per_minute_stay_under_the_limit(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    tpm = 30_000
    make_images(tmp_path / "images", 10)
    params = params_for(
        tmp_path / "images", tmp_path / "out", teacher.base_url, tpm=tpm, rpm=100_000, concurrency=10, max_tokens=150,
        model="gpt-4o",  # 85 + 170 per tile: a 64x48 picture is 255 tokens (gpt-4o-mini bills 8,500)
    )
    run_generate_flow(params, show_progress=False)
    requests = sorted(chat_requests(teacher.stats()), key=lambda r: r["t"])
    assert len(requests) == 10 and all(r["finish_reason"] == "stop" for r in requests)
    times = [r["t"] for r in requests]
    tokens = [float(r["prompt_tokens"] + r["completion_tokens"]) for r in requests]
    assert max_excess(times, tokens, BucketShape.for_limit(tpm)) <= 0
    assert times[-1] - times[0] >= 3.0  # 10 x ~410 estimated tokens at ~490 tokens/s cannot go faster
