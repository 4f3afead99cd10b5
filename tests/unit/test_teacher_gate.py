"""The rate gate on a virtual clock: pacing, following the endpoint's headers, and backing off after 429s."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill.errors import TransientTeacherError
from vqa_distill.teacher.ratelimit.buckets import BucketShape
from vqa_distill.teacher.ratelimit.gate import MIN_PACE, RateGate
from vqa_distill.teacher.ratelimit.headers import RateLimitHeaders, parse_duration

LOGGER = "vqa_distill.teacher"


def endpoint_headers(limit: int, remaining: int, reset: str, kind: str = "tokens") -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": reset,
    }


def waited(clock: FakeClock, gate: RateGate, tokens: int) -> float:
    """Acquire ``tokens`` and return how long the gate held the request (virtual seconds)."""
    started = clock.t
    asyncio.run(gate.acquire(tokens))
    return clock.t - started


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("120ms", 0.12),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1m30.5s", 90.5),
        ("2h0m0s", 7200.0),
        ("0s", 0.0),
        ("17.5s", 17.5),
        ("3", 3.0),
        ("1m", 60.0),
        ("", None),
        ("soon", None),
        ("5 s", None),
        ("1x", None),
        ("-3", 0.0),
        (None, None),
    ],
)
def test_parse_duration_reads_openai_reset_headers(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_rate_limit_headers_need_a_remaining_count() -> None:
    view = RateLimitHeaders.parse(endpoint_headers(60_000, 59_000, "1s"), "tokens")
    assert view == RateLimitHeaders(limit=60_000, remaining=59_000, reset_s=1.0)
    assert RateLimitHeaders.parse(endpoint_headers(60_000, 59_000, "1s"), "requests") is None
    assert RateLimitHeaders.parse({"x-ratelimit-remaining-tokens": "lots"}, "tokens") is None


# ----------------------------------------------------------------------------- own pacing


def test_requests_are_spaced_by_the_rpm_bucket() -> None:
    clock = FakeClock()
    gate = RateGate(60, 10_000_000, clock=clock)  # bucket of 1 request draining 59/60 per second
    assert waited(clock, gate, 1) == 0
    assert waited(clock, gate, 1) == pytest.approx(60 / 59)


def test_a_request_larger_than_the_bucket_goes_when_it_is_empty_and_the_next_waits_for_it() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 6000, clock=clock)  # tokens: capacity 100, 5900/60 per second
    rate = 5900 / 60
    assert waited(clock, gate, 500) == 0
    assert waited(clock, gate, 1) == pytest.approx((500 - 99) / rate)


def test_usage_beyond_the_estimate_is_charged_afterwards() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 6000, clock=clock)
    asyncio.run(gate.acquire(50))
    asyncio.run(gate.settle(50, 250))  # the answer used 200 more than estimated
    assert waited(clock, gate, 50) == pytest.approx((250 - 50) / (5900 / 60))


def test_waiters_are_served_in_order() -> None:
    clock = FakeClock()
    gate = RateGate(60, 10_000_000, clock=clock)

    async def five() -> list[float]:
        times: list[float] = []

        async def one() -> None:
            await gate.acquire(1)
            times.append(clock.t)

        await asyncio.gather(*(one() for _ in range(5)))
        return times

    times = asyncio.run(five())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([60 / 59] * 4)


def test_bucket_shape_never_admits_more_than_the_limit_in_a_minute() -> None:
    for limit in (60, 500, 200_000):
        shape = BucketShape.for_limit(limit)
        assert shape.capacity + shape.rate_per_second * 60 <= limit + 1e-9


# ----------------------------------------------------------------------------- endpoint headers


def test_fewer_tokens_left_at_the_endpoint_slow_the_next_request() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, clock=clock)  # own bucket: 10,000 tokens, never the limit here
    admitted = asyncio.run(gate.acquire(1000))
    gate.observe(endpoint_headers(600_000, 0, "60s"), admitted)
    assert waited(clock, gate, 1000) == pytest.approx(1000 / 10_000)  # refills at 600,000/60 per second


def test_tokens_left_are_enough_so_nothing_waits() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, clock=clock)
    admitted = asyncio.run(gate.acquire(1000))
    gate.observe(endpoint_headers(600_000, 599_000, "100ms"), admitted)
    assert waited(clock, gate, 1000) == 0


def test_what_was_sent_after_the_answered_request_is_subtracted() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, clock=clock)
    first = asyncio.run(gate.acquire(1000))
    second = asyncio.run(gate.acquire(1000))
    gate.observe(endpoint_headers(600_000, 3000, "59.7s"), first)  # 1000 of the 3000 went to the second
    assert waited(clock, gate, 3000) == pytest.approx(1000 / 10_000)
    gate.observe(endpoint_headers(600_000, 3000, "59.7s"), second)  # nothing was sent after the third
    assert waited(clock, gate, 100) == 0


def test_headers_are_never_taken_for_more_than_they_say() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, clock=clock)
    admitted = asyncio.run(gate.acquire(1000))
    clock.advance(0.5)  # the answer comes half a second later; "remaining" may be from either moment
    gate.observe(endpoint_headers(600_000, 0, "1m"), admitted)
    assert waited(clock, gate, 5000) == pytest.approx(0.5)  # 5,000 tokens at 10,000 per second


def test_the_projection_refills_after_the_answer() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, clock=clock)
    admitted = asyncio.run(gate.acquire(1000))
    gate.observe(endpoint_headers(600_000, 0, "1m"), admitted)
    clock.advance(0.5)
    assert waited(clock, gate, 5000) == 0


def test_fewer_requests_left_slow_down_too() -> None:
    clock = FakeClock()
    gate = RateGate(6000, 10_000_000, clock=clock)
    admitted = asyncio.run(gate.acquire(1))
    gate.observe(endpoint_headers(6000, 0, "10ms", kind="requests"), admitted)
    assert waited(clock, gate, 1) == pytest.approx(60 / 6000)


def test_a_lower_limit_at_the_endpoint_replaces_the_configured_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    gate = RateGate(500, 200_000, clock=FakeClock())
    gate.observe({**endpoint_headers(30_000, 30_000, "0s"), **endpoint_headers(10_000, 9_999, "6ms", "requests")})
    assert gate.limit("tokens") == 30_000
    assert gate.limit("requests") == 500  # a higher endpoint limit never raises the configured one
    assert any("allows 30000 tokens per minute" in r.getMessage() for r in caplog.records)


def test_an_endpoint_reset_longer_than_max_retry_after_fails_the_attempt() -> None:
    clock = FakeClock()
    gate = RateGate(500, 200_000, max_retry_after=60, clock=clock)
    gate.observe(endpoint_headers(1000, 0, "6m0s"))  # a daily-style budget: 1000 tokens back in 6 minutes
    with pytest.raises(TransientTeacherError, match="longer than max_retry_after 60 s"):
        asyncio.run(gate.acquire(500))
    assert clock.sleeps == []


def test_headers_are_ignored_when_not_adaptive() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 600_000, adaptive=False, clock=clock)
    admitted = asyncio.run(gate.acquire(1000))
    gate.observe(endpoint_headers(600_000, 0, "60s"), admitted)
    assert waited(clock, gate, 1000) == 0


# ----------------------------------------------------------------------------- 429s


def test_a_429_cuts_the_pace_once_per_burst_and_it_recovers() -> None:
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, clock=clock)  # no request waits: the pace changes by 429s alone
    early = asyncio.run(gate.acquire(1))
    late = asyncio.run(gate.acquire(1))
    gate.throttled(None, early)
    assert gate.pace == pytest.approx(0.7)
    gate.throttled(None, early)  # sent before the cut: the same burst
    gate.throttled(None, late)
    assert gate.pace == pytest.approx(0.7)
    fresh = asyncio.run(gate.acquire(1))
    gate.throttled(None, fresh)  # sent after the cut: the pace is still too high
    assert gate.pace == pytest.approx(0.49)
    clock.advance(10)
    assert gate.pace == pytest.approx(0.59)
    clock.advance(100)
    assert gate.pace == 1.0


def test_the_pace_has_a_floor() -> None:
    gate = RateGate(60, 10_000_000, clock=FakeClock())
    for _ in range(30):
        gate.throttled(None)
    assert gate.pace == pytest.approx(MIN_PACE)


def test_a_lower_pace_spaces_requests_further() -> None:
    clock = FakeClock()
    gate = RateGate(60, 10_000_000, clock=clock)
    asyncio.run(gate.acquire(1))
    gate.throttled(None)
    assert waited(clock, gate, 1) == pytest.approx(60 / 59 / 0.7, rel=0.02)  # recovering slightly meanwhile


def test_retry_after_holds_everyone_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, clock=clock)
    gate.throttled(5.0)
    assert waited(clock, gate, 10) == pytest.approx(5.0)
    lines = [r.getMessage() for r in caplog.records]
    assert "rate limit: pausing all requests for 5.0 s (Retry-After)" in lines
    assert any("pace lowered to 70 %" in line for line in lines)


def test_a_burst_of_429s_is_one_pause_and_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, clock=clock)
    for _ in range(5):  # five requests in flight all meet the same empty bucket
        gate.throttled(0.4)
    pauses = [r.getMessage() for r in caplog.records if "pausing" in r.getMessage()]
    assert pauses == ["rate limit: pausing all requests for 0.4 s (Retry-After)"]
    assert waited(clock, gate, 10) == pytest.approx(0.4)


def test_a_retry_after_beyond_the_maximum_fails_requests_instead_of_freezing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, max_retry_after=60, clock=clock)
    gate.throttled(3600.0)
    for _ in range(3):
        with pytest.raises(TransientTeacherError) as raised:
            asyncio.run(gate.acquire(10))
        assert raised.value.retry_after == pytest.approx(3600)
    assert clock.sleeps == []  # nobody waited
    assert any("longer than max_retry_after 60 s" in r.getMessage() for r in caplog.records)
    clock.advance(3601)
    assert waited(clock, gate, 10) == 0  # once the endpoint's time is up, requests go again


def test_a_retry_after_within_the_maximum_is_waited() -> None:
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, max_retry_after=30, clock=clock)
    gate.pause(29.0)
    assert waited(clock, gate, 10) == pytest.approx(29.0)


def test_not_adaptive_still_honours_retry_after_but_keeps_its_pace() -> None:
    clock = FakeClock()
    gate = RateGate(60_000, 10_000_000, adaptive=False, clock=clock)
    gate.throttled(2.0)
    assert gate.pace == 1.0
    assert waited(clock, gate, 10) == pytest.approx(2.0)
