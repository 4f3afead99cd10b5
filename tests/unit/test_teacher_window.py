"""No 60-second window exceeds the limits, whatever the sizes: large requests on a virtual clock, and the
aiolimiter ceiling on the real one.

The measured hole: with 1536^2 photos on gpt-4o-mini (26,525 tokens a request with a 1,024 cap) at
200,000 TPM, the token bucket (capacity 3,333) admitted one whenever it was empty, every 8.09 s:
eight in one minute, 212,200 tokens.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.ratelimit.ceiling import rpm_ceiling
from vqa_distill.teacher.ratelimit.gate import RateGate
from vqa_distill.teacher.ratelimit.window import WINDOW_SPAN_S, SlidingWindow

MINUTE = 60.0
PHOTO_TOKENS = model_spec("gpt-4o-mini").image_tokens(1536, 1536) + 1024  # 25,501 + the answer cap


def heaviest_minute(times: list[float], amounts: list[float], span: float = MINUTE) -> float:
    """Return the most admitted in any closed window of ``span`` seconds."""
    worst = 0.0
    for start, t0 in enumerate(times):
        worst = max(worst, sum(a for t, a in zip(times[start:], amounts[start:], strict=True) if t - t0 <= span))
    return worst


def admit_all(gate: RateGate, clock: FakeClock, amounts: list[int]) -> list[float]:
    """Acquire each amount in turn; return the admission times."""

    async def run() -> list[float]:
        times = []
        for amount in amounts:
            await gate.acquire(amount)
            times.append(clock.t)
        return times

    return asyncio.run(run())


def test_1536_photos_on_gpt_4o_mini_never_put_more_than_the_tpm_in_a_minute() -> None:
    assert PHOTO_TOKENS == 26_525
    clock = FakeClock()
    gate = RateGate(500, 200_000, clock=clock)
    times = admit_all(gate, clock, [PHOTO_TOKENS] * 30)
    assert heaviest_minute(times, [PHOTO_TOKENS] * 30) <= 200_000  # was 212,200: 8 photos
    # ...and the limit is used: 7 photos (185,675 tokens) per window of a minute and its slack.
    per_minute = (len(times) - 1) / (times[-1] - times[0]) * MINUTE
    assert per_minute >= 0.9 * 7 * MINUTE / WINDOW_SPAN_S


def test_mixed_sizes_keep_every_window_within_the_limit() -> None:
    rng = random.Random(7)
    amounts = [rng.choice([800, 3_000, 26_525, 36_835, 60_000, 120_000]) for _ in range(120)]
    clock = FakeClock()
    gate = RateGate(500, 200_000, clock=clock)
    times = admit_all(gate, clock, amounts)
    assert heaviest_minute(times, [float(a) for a in amounts]) <= 200_000


def test_a_give_back_frees_the_window_too() -> None:
    clock = FakeClock()
    gate = RateGate(500, 200_000, clock=clock)

    async def run() -> float:
        first = await gate.acquire(150_000)  # a cautious estimate
        await gate.settle(150_000, 2_000, first)  # the endpoint counted 2,000
        clock.advance(60_000 / (200_000 - 3_333) * 60)  # the bucket drains what was charged
        started = clock.t
        await gate.acquire(100_000)  # 150,000 + 100,000 would not fit the minute; 2,000 + 100,000 does
        return clock.t - started

    assert asyncio.run(run()) == pytest.approx(0.0, abs=0.01)


def test_the_window_lets_the_oldest_amounts_leave_first() -> None:
    window = SlidingWindow(100.0, span=60.0)
    window.add(60.0, now=0.0)
    window.add(30.0, now=10.0)
    assert window.wait(20.0, now=20.0) == pytest.approx(40.0)  # the 60 leaves at t = 60
    assert window.wait(10.0, now=20.0) == 0.0
    assert window.wait(500.0, now=20.0) == pytest.approx(50.0)  # larger than the limit: an empty window
    assert window.wait(500.0, now=70.0) == 0.0


# ----------------------------------------------------------------------------- the aiolimiter ceiling


@pytest.mark.parametrize("rpm", [1, 2, 30, 60, 61, 500, 5_000, 30_000])
def test_the_ceiling_is_shaped_never_to_exceed_the_rpm_in_a_minute(rpm: int) -> None:
    limiter = rpm_ceiling(rpm)
    assert limiter.max_rate >= 1  # one request always fits
    assert limiter.max_rate * (1 + MINUTE / limiter.time_period) <= rpm + 1e-9 or rpm == 1
    if rpm == 1:  # one a minute: a second one waits more than the minute
        assert limiter.max_rate + MINUTE / limiter.time_period < 2


def test_a_gate_on_the_real_clock_has_its_ceiling_and_a_virtual_one_has_none() -> None:
    assert RateGate(500, 200_000).ceiling is not None
    assert RateGate(500, 200_000, clock=FakeClock()).ceiling is None


def test_the_ceiling_holds_whatever_the_gate_above_it_would_let_through() -> None:
    """A gate whose own buckets allow a 30-second burst still sends no faster than the ceiling."""
    rpm = 1200
    ceiling = rpm_ceiling(rpm)  # 19.7 at once, then 19.7 a second

    async def run() -> list[float]:
        gate = RateGate(rpm, 100_000_000, burst_seconds=30.0, ceiling=ceiling)  # own bucket: 600 at once
        times: list[float] = []

        async def one() -> None:
            await gate.acquire(10)
            times.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(50)))
        return times

    times = sorted(asyncio.run(run()))
    allowed_per_s = ceiling.max_rate / ceiling.time_period
    for start, t0 in enumerate(times):  # every window W holds at most max_rate + rate * W (+1: timer slack)
        for end in range(start, len(times)):
            assert end - start + 1 <= ceiling.max_rate + allowed_per_s * (times[end] - t0) + 1
    assert times[-1] - times[0] >= (50 - ceiling.max_rate) / allowed_per_s * 0.9  # held: ~1.5 s, not at once
