"""Sustained 429s trip a breaker that pauses every request; a spent quota stops the run in one line.

On a virtual clock, and through the real ``openai`` client for the quota.
"""

from __future__ import annotations

import asyncio
import logging
import re

import httpx2
import pytest

from tests.support.fake_clock import FakeClock
from tests.unit.test_teacher_client_errors import (
    BASE_URL,
    KEY,
    Recorder,
    ask_through,
    error_body,
    one_request,
)
from vqa_distill.errors import FatalRunError, TeacherAuthError, TransientTeacherError
from vqa_distill.teacher.ratelimit.gate import RateGate
from vqa_distill.teacher.ratelimit.holds import BREAKER_429S, BREAKER_PAUSE_S

LOGGER = "vqa_distill.teacher"
BREAKER_LINE = re.compile(
    rf"rate limit: {BREAKER_429S} 429s in a row with no answer between them: pausing every request of the run "
    rf"for {BREAKER_PAUSE_S:.0f} s, until \d\d:\d\d:\d\d"
)


def free_gate(clock: FakeClock, **options: float) -> RateGate:
    """A gate whose own limits never hold a request here: only the 429s do."""
    return RateGate(60_000, 100_000_000, clock=clock, **options)  # type: ignore[arg-type]


def refuse(gate: RateGate, times: int) -> None:
    """Send ``times`` requests and answer each with a 429 (no Retry-After)."""
    for _ in range(times):
        admission = asyncio.run(gate.acquire(10))
        gate.throttled(None, admission)


def breaker_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "in a row" in r.getMessage()]


def test_sustained_429s_pause_every_request_once_and_then_resume(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = free_gate(clock)
    refuse(gate, BREAKER_429S)
    lines = breaker_lines(caplog)
    assert len(lines) == 1 and BREAKER_LINE.fullmatch(lines[0]), lines

    async def three_waiters() -> list[float]:
        started = clock.t
        times: list[float] = []

        async def one() -> None:
            await gate.acquire(10)
            times.append(clock.t - started)

        await asyncio.gather(one(), one(), one())
        return times

    held = asyncio.run(three_waiters())
    assert held[0] == pytest.approx(BREAKER_PAUSE_S, abs=0.5)  # every request waits the pause...
    assert all(t >= BREAKER_PAUSE_S - 0.5 for t in held)
    assert len(breaker_lines(caplog)) == 1  # ...said once, and the run goes on after it


def test_an_answer_between_the_429s_keeps_the_breaker_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = free_gate(clock)
    refuse(gate, BREAKER_429S - 1)
    asyncio.run(gate.settle(10, 10))  # one answer
    refuse(gate, BREAKER_429S - 1)
    assert breaker_lines(caplog) == []


def test_the_429s_that_tripped_it_do_not_trip_it_again(caplog: pytest.LogCaptureFixture) -> None:
    """Requests in flight when it tripped come back 429 too: they are the same refusal, not a new one."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    gate = free_gate(clock)
    in_flight = [asyncio.run(gate.acquire(10)) for _ in range(3 * BREAKER_429S)]
    for admission in in_flight:
        gate.throttled(None, admission)
    assert len(breaker_lines(caplog)) == 1


def test_the_pause_never_outlasts_max_retry_after_so_requests_wait_instead_of_failing() -> None:
    clock = FakeClock()
    gate = free_gate(clock, max_retry_after=5.0)
    refuse(gate, BREAKER_429S)
    started = clock.t
    asyncio.run(gate.acquire(10))  # no TransientTeacherError: the pause is 5 s, not 30
    assert clock.t - started == pytest.approx(5.0, abs=0.5)


def test_through_the_client_the_breaker_holds_the_next_request() -> None:
    clock = FakeClock()
    gate = free_gate(clock)
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(429, json=error_body("busy"))})
    for _ in range(BREAKER_429S):
        with pytest.raises(TransientTeacherError):
            ask_through(endpoint, one_request("gpt-4o-mini"), gate)
    started = clock.t
    with pytest.raises(TransientTeacherError):
        ask_through(endpoint, one_request("gpt-4o-mini"), gate)
    assert clock.t - started >= BREAKER_PAUSE_S - 0.5


# ----------------------------------------------------------------------------- insufficient_quota


def quota_spent() -> httpx2.Response:
    body = error_body("You exceeded your current quota, please check your plan and billing details.")
    body["error"].update(type="insufficient_quota", code="insufficient_quota")
    return httpx2.Response(429, json=body)


def test_a_spent_quota_is_fatal_in_one_line_and_nothing_more_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    gate = free_gate(FakeClock())
    endpoint = Recorder({"/v1/chat/completions": lambda r: quota_spent()})
    expected = (
        f"the endpoint {BASE_URL}/ refuses requests: the account's quota is spent (insufficient_quota); "
        "check the plan and billing of the account behind the API key"
    )
    for _ in range(5):
        with pytest.raises(TeacherAuthError) as raised:
            ask_through(endpoint, one_request("gpt-4o-mini"), gate)
        assert str(raised.value) == expected and isinstance(raised.value, FatalRunError)
    assert len(endpoint.seen) == 1  # the first said it; no other image was sent to fail the same way
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [expected]
    assert KEY not in expected
    assert gate.pace == 1.0  # not a rate limit: no pace cut, no pause
