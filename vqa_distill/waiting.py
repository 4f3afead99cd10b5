"""Wait and try again inside one step: the project's retry-while and poll-until loops, on tenacity.

Prefect's task retries stay the retry layer a user sees; these are the waits *inside* a step, where
failing would cost more than waiting: a paid answer whose database is restarting, a run folder's lock
another process holds, a server starting up, a Prefect API restarting under a waiting parent run.

- ``retry_while`` / ``retry_while_async``: call again while it raises one of ``errors`` (and
  ``transient`` agrees), waiting ``wait_s`` between tries (doubled each time up to ``max_wait_s``
  when that is given), telling ``on_retry`` before each wait, until ``patience`` runs out; then
  raise ``gave_up(last error)``, or the last error itself. Any other error goes straight through.
- ``poll_until`` / ``poll_until_async``: ask ``ready()`` every ``every_s`` until it is true; once
  ``timeout_s`` have passed, raise ``timed_out()``. An error ``ready`` raises goes straight through
  (how a caller stops early: a process that died while it was awaited).

``patience`` is either seconds from the first try (a retry whose wait would end past them is not
made), or a callable asked with the clock's time at each retryable failure, False meaning give up:
the caller's own measure, such as an outage timed across several calls. Time and sleep are
parameters (``clock``, ``sleep``), so tests pass a fake clock and never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, retry_if_result
from tenacity.wait import wait_base, wait_exponential, wait_fixed

T = TypeVar("T")
Clock = Callable[[], float]
Errors = type[BaseException] | tuple[type[BaseException], ...]
Patience = float | Callable[[float], bool]
OnRetry = Callable[[BaseException, float], object]  # (the error, the seconds about to be waited)
GaveUp = Callable[[BaseException], BaseException]  # the last error -> the error to raise instead


def _always(_error: BaseException) -> bool:
    return True


def retry_while(
    call: Callable[[], T], errors: Errors, *, wait_s: float, patience: Patience, max_wait_s: float | None = None,
    transient: Callable[[BaseException], bool] = _always, on_retry: OnRetry | None = None,
    gave_up: GaveUp | None = None, sleep: Callable[[float], None] = time.sleep, clock: Clock = time.monotonic,
) -> T:  # fmt: skip
    """Return ``call()``, trying again while it raises a transient one of ``errors`` (module docstring)."""
    policy = _retry_policy(errors, wait_s, max_wait_s, patience, transient, on_retry, gave_up, clock)
    return Retrying(sleep=sleep, **policy)(call)


async def retry_while_async(
    call: Callable[[], Awaitable[T]], errors: Errors, *, wait_s: float, patience: Patience,
    max_wait_s: float | None = None, transient: Callable[[BaseException], bool] = _always,
    on_retry: OnRetry | None = None, gave_up: GaveUp | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, clock: Clock = time.monotonic,
) -> T:  # fmt: skip
    """Return ``await call()``, trying again while it raises a transient one of ``errors`` (module docstring)."""

    async def attempt() -> T:  # a coroutine function: tenacity 9 awaits only those, not a lambda's awaitable
        return await call()

    policy = _retry_policy(errors, wait_s, max_wait_s, patience, transient, on_retry, gave_up, clock)
    result: T = await AsyncRetrying(sleep=sleep, **policy)(attempt)
    return result


def poll_until(
    ready: Callable[[], bool], *, timeout_s: float, every_s: float, timed_out: Callable[[], BaseException],
    sleep: Callable[[float], None] = time.sleep, clock: Clock = time.monotonic,
) -> None:  # fmt: skip
    """Return once ``ready()`` is true; raise ``timed_out()`` when it is still false after ``timeout_s``."""
    Retrying(sleep=sleep, **_poll_policy(timeout_s, every_s, timed_out, clock))(ready)


async def poll_until_async(
    ready: Callable[[], bool], *, timeout_s: float, every_s: float, timed_out: Callable[[], BaseException],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, clock: Clock = time.monotonic,
) -> None:  # fmt: skip
    """Return once ``ready()`` is true, sleeping without blocking the loop; ``timed_out()`` after ``timeout_s``."""

    async def look() -> bool:  # tenacity 8 awaits what it calls
        return ready()

    await AsyncRetrying(sleep=sleep, **_poll_policy(timeout_s, every_s, timed_out, clock))(look)


def _retry_policy(
    errors: Errors, wait_s: float, max_wait_s: float | None, patience: Patience,
    transient: Callable[[BaseException], bool], on_retry: OnRetry | None, gave_up: GaveUp | None, clock: Clock,
) -> dict[str, Any]:  # fmt: skip
    """Return tenacity's arguments for one retry_while call; a deadline in seconds starts now."""
    wait: wait_base = wait_fixed(wait_s) if max_wait_s is None else wait_exponential(multiplier=wait_s, max=max_wait_s)
    if callable(patience):
        ask = patience

        def stop(state: RetryCallState) -> bool:
            return not ask(clock())
    else:
        deadline = clock() + patience

        def stop(state: RetryCallState) -> bool:
            return clock() + wait(state) > deadline  # the wait itself computed here: tenacity 8 stops before it

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(_error_of(state), wait(state))

    policy: dict[str, Any] = {
        "retry": retry_if_exception(lambda error: isinstance(error, errors) and transient(error)),
        "wait": wait, "stop": stop, "before_sleep": before_sleep,
    }  # fmt: skip
    if gave_up is None:
        policy["reraise"] = True  # the last error itself, not tenacity's RetryError
    else:

        def give_up(state: RetryCallState) -> Any:
            error = _error_of(state)
            raise gave_up(error) from error

        policy["retry_error_callback"] = give_up
    return policy


def _poll_policy(timeout_s: float, every_s: float, timed_out: Callable[[], BaseException], clock: Clock) -> dict[str, Any]:
    """Return tenacity's arguments for one poll_until call; its deadline starts now."""
    deadline = clock() + timeout_s

    def give_up(state: RetryCallState) -> Any:
        raise timed_out()

    return {
        "retry": retry_if_result(lambda ok: not ok),
        "wait": wait_fixed(every_s),
        "stop": lambda state: clock() > deadline,
        "retry_error_callback": give_up,
    }


def _error_of(state: RetryCallState) -> BaseException:
    """The error of the try that just failed."""
    error = state.outcome.exception() if state.outcome is not None else None
    assert error is not None, "tenacity retries here on errors only"
    return error
