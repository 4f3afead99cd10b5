"""The retry-while and poll-until helpers on a virtual clock: attempts, waits, patience, the error raised."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill.waiting import poll_until, poll_until_async, retry_while, retry_while_async


class Busy(Exception):
    """A transient error of the thing called."""


class Broken(Exception):
    """An error no wait cures."""


class SyncClock(FakeClock):
    """The virtual clock for the blocking helpers: ``block`` moves it at once, as ``sleep`` does."""

    def block(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


def failing(times: int, error: Callable[[], BaseException] = Busy) -> tuple[Callable[[], str], list[int]]:
    """Return a call that raises ``error()`` ``times`` times, then answers "done"; and its attempt count."""
    attempts = [0]

    def call() -> str:
        attempts[0] += 1
        if attempts[0] <= times:
            raise error()
        return "done"

    return call, attempts


# ----------------------------------------------------------------------------- retry_while


@pytest.mark.parametrize(("failures", "sleeps"), [(0, []), (1, [0.2]), (3, [0.2, 0.4, 0.8]), (6, [0.2, 0.4, 0.8, 1.6, 2.0, 2.0])])
def test_a_transient_error_is_retried_with_doubling_waits_up_to_the_cap(failures: int, sleeps: list[float]) -> None:
    clock = SyncClock()
    call, attempts = failing(failures)
    told: list[tuple[str, float]] = []
    result = retry_while(
        call, Busy, wait_s=0.2, max_wait_s=2.0, patience=60.0, sleep=clock.block, clock=clock.now,
        on_retry=lambda error, wait: told.append((type(error).__name__, wait)),
    )  # fmt: skip
    assert result == "done" and attempts == [failures + 1]
    assert clock.sleeps == sleeps and told == [("Busy", wait) for wait in sleeps]


def test_without_a_cap_every_wait_is_the_same() -> None:
    clock = SyncClock()
    call, _ = failing(3)
    retry_while(call, Busy, wait_s=0.5, patience=60.0, sleep=clock.block, clock=clock.now)
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_no_retry_is_made_whose_wait_would_end_past_the_patience() -> None:
    clock = SyncClock()
    call, attempts = failing(100)
    with pytest.raises(Busy):  # the last error itself, not a wrapper
        retry_while(call, Busy, wait_s=1.0, max_wait_s=4.0, patience=10.0, sleep=clock.block, clock=clock.now)
    assert clock.sleeps == [1.0, 2.0, 4.0] and attempts == [4]  # 7 s waited; a 4 s wait more would end at 11 s


def test_no_patience_means_one_try() -> None:
    clock = SyncClock()
    call, attempts = failing(1)
    with pytest.raises(Busy):
        retry_while(call, Busy, wait_s=0.2, patience=0.0, sleep=clock.block, clock=clock.now)
    assert attempts == [1] and clock.sleeps == []


def test_the_caller_may_name_the_error_raised_when_patience_runs_out() -> None:
    clock = SyncClock()
    call, _ = failing(100)
    with pytest.raises(RuntimeError, match="gave up after Busy") as caught:
        retry_while(call, Busy, wait_s=1.0, patience=2.5, sleep=clock.block, clock=clock.now,
                    gave_up=lambda error: RuntimeError(f"gave up after {type(error).__name__}"))  # fmt: skip
    assert isinstance(caught.value.__cause__, Busy)


@pytest.mark.parametrize("transient", [True, False])
def test_other_errors_and_errors_judged_not_transient_go_straight_through(transient: bool) -> None:
    clock = SyncClock()
    call, attempts = failing(1, Broken if transient else Busy)
    with pytest.raises(Broken if transient else Busy):
        retry_while(call, Busy, wait_s=0.2, patience=60.0, transient=lambda error: transient,
                    sleep=clock.block, clock=clock.now)  # fmt: skip
    assert attempts == [1] and clock.sleeps == []


def test_a_patience_callable_is_asked_at_each_failure_with_the_clocks_time() -> None:
    clock = SyncClock(start=0.0)
    asked: list[float] = []

    def patient(now: float) -> bool:
        asked.append(now)
        return now < 5.0

    call, attempts = failing(100)
    with pytest.raises(Busy):
        retry_while(call, Busy, wait_s=2.0, patience=patient, sleep=clock.block, clock=clock.now)
    assert asked == [0.0, 2.0, 4.0, 6.0] and attempts == [4]


# ----------------------------------------------------------------------------- retry_while_async


async def test_an_awaitable_is_retried_and_a_lambda_returning_one_is_awaited() -> None:
    clock = FakeClock()
    call, attempts = failing(2)

    async def ask() -> str:
        return call()

    result = await retry_while_async(lambda: ask(), Busy, wait_s=2.0, patience=60.0, sleep=clock.sleep, clock=clock.now)
    assert result == "done" and attempts == [3] and clock.sleeps == [2.0, 2.0]


async def test_an_outage_longer_than_the_callers_patience_raises_the_callers_error() -> None:
    clock = FakeClock(start=0.0)
    warned: list[str] = []
    call, attempts = failing(100)

    async def ask() -> str:
        return call()

    with pytest.raises(RuntimeError, match="no answer for 5 s") as caught:
        await retry_while_async(
            ask, Busy, wait_s=2.0, patience=lambda now: now <= 5.0, sleep=clock.sleep, clock=clock.now,
            on_retry=lambda error, wait: warned.append(f"{type(error).__name__}, again in {wait:.0f} s"),
            gave_up=lambda error: RuntimeError("no answer for 5 s"),
        )  # fmt: skip
    assert isinstance(caught.value.__cause__, Busy)
    assert attempts == [4] and clock.sleeps == [2.0, 2.0, 2.0] and warned == ["Busy, again in 2 s"] * 3


# ----------------------------------------------------------------------------- poll_until


def test_polling_returns_once_ready() -> None:
    clock = SyncClock()
    answers = iter([False, False, True])
    poll_until(lambda: next(answers), timeout_s=10.0, every_s=0.3, timed_out=AssertionError, sleep=clock.block,
               clock=clock.now)  # fmt: skip
    assert clock.sleeps == [0.3, 0.3]


def test_polling_past_the_timeout_raises_the_callers_error() -> None:
    clock = SyncClock(start=0.0)
    looks: list[float] = []

    def ready() -> bool:
        looks.append(clock.now())
        return False

    with pytest.raises(TimeoutError, match="still busy"):
        poll_until(ready, timeout_s=1.0, every_s=0.4, timed_out=lambda: TimeoutError("still busy"),
                   sleep=clock.block, clock=clock.now)  # fmt: skip
    assert looks == pytest.approx([0.0, 0.4, 0.8, 1.2])  # the last look comes after the deadline


def test_an_error_of_ready_stops_the_polling_at_once() -> None:
    clock = SyncClock()
    with pytest.raises(Broken):
        poll_until(lambda: (_ for _ in ()).throw(Broken()), timeout_s=10.0, every_s=0.3, timed_out=AssertionError,
                   sleep=clock.block, clock=clock.now)  # fmt: skip
    assert clock.sleeps == []


async def test_async_polling_sleeps_on_the_loop_and_times_out() -> None:
    clock = FakeClock(start=0.0)
    with pytest.raises(TimeoutError, match="lock held"):
        await poll_until_async(lambda: False, timeout_s=1.0, every_s=0.25, timed_out=lambda: TimeoutError("lock held"),
                               sleep=clock.sleep, clock=clock.now)  # fmt: skip
    assert clock.sleeps == [0.25] * 5 and clock.now() == 1.25  # looked at 1.0 (not past the deadline), then at 1.25
    answers = iter([False, True])
    await poll_until_async(lambda: next(answers), timeout_s=1.0, every_s=0.2, timed_out=AssertionError,
                           sleep=clock.sleep, clock=clock.now)  # fmt: skip
