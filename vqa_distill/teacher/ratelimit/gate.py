"""The gate every teacher request passes: requests and tokens per minute, and what the endpoint says.

What decides when a request may go:

1. The ceiling: the configured RPM as an ``aiolimiter.AsyncLimiter`` (``ceiling.py``), the hard cap
   under which everything below paces. It never changes.
2. Two leaky buckets (requests, tokens): the gate's own pace. A bucket of capacity C draining at R
   admits at most C + R*W in any window of W seconds, so each holds ``burst_seconds`` worth and
   drains at (limit - C)/60: the steady rate is (1 - burst/60) of the limit. The buckets are this
   gate's and not aiolimiter's: theirs cannot change rate after a 429, carry a debt when ``usage``
   exceeds the estimate, or run on a clock a test drives.
3. The last minute's tokens (``window.py``): a request larger than a bucket's capacity goes when the
   bucket is empty, which alone would let one minute hold more than the TPM; the window is exact
   whatever the sizes.
4. The endpoint's own view, from its ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
   headers. Each answer's ``remaining`` is projected to now (never above what it says, lowered when
   more was sent since that request than the endpoint restored meanwhile); it then refills at the
   endpoint's rate and loses each request sent. A request waits while that projection cannot hold it:
   the gate slows down before the endpoint says no. A ``limit`` header below the configured one
   replaces it.
5. 429s (``holds.py``): each burst cuts the pace; a ``Retry-After`` holds every request; ten in a row
   with no answer between trip the breaker and pause every request; an ``insufficient_quota`` stops
   the gate. A wait the endpoint imposes that is longer than ``max_retry_after`` is not waited: the
   request fails as a transient error at once and the task's retry policy decides.
6. Several workers: ``outer``, the limit they share (``global_gate.py``). After the local waits, under
   the lock, the request books its global slot and sleeps until it, so it leaves exactly then and the
   local buckets count it then: both bounds hold, and a worker never holds more than one booking.

Each answer's ``usage`` settles its estimate both ways: tokens beyond it are charged (the bucket may
go over C, and the next requests wait for them), tokens it over-booked are given back. The estimate
itself learns from the answers (``calibration.py``): a model the table does not know starts cautious,
then adopts what it measured.

Every pause of a second or more is one log line: the Prefect run logger inside a run, else ``logging``.
The gate is bound to one event loop (its lock and its ceiling are), so one is made per loop. Time comes
from a ``Clock``, so tests can drive it without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiolimiter import AsyncLimiter

from vqa_distill.errors import FatalRunError, TransientTeacherError
from vqa_distill.teacher.ratelimit.buckets import (
    DEFAULT_BURST_SECONDS,
    WINDOW_SECONDS,
    BucketShape,
    EndpointAllowance,
    LeakyBucket,
)
from vqa_distill.teacher.ratelimit.calibration import ImageCalibration
from vqa_distill.teacher.ratelimit.ceiling import rpm_ceiling
from vqa_distill.teacher.ratelimit.clock import Clock, MonotonicClock
from vqa_distill.teacher.ratelimit.concurrency import ConcurrencyLimit
from vqa_distill.teacher.ratelimit.headers import KINDS, Kind, RateLimitHeaders
from vqa_distill.teacher.ratelimit.holds import MIN_PACE, Holds
from vqa_distill.teacher.ratelimit.window import Entry, SlidingWindow
from vqa_distill.teacher.run_log import run_logger

if TYPE_CHECKING:
    from vqa_distill.teacher.ratelimit.global_gate import GlobalGate

__all__ = ["DEFAULT_MAX_RETRY_AFTER_S", "MIN_PACE", "Admission", "RateGate"]

DEFAULT_MAX_RETRY_AFTER_S = 60.0  # longer waits asked by the endpoint fail the attempt instead
WAIT_RESOLUTION_S = 1e-6  # shorter waits are float noise: sleeping them could not move the clock
OWN_PACE = "pace"  # the gate's own limits: waited whatever their length, never logged
LAST_MINUTE = "the last minute's tokens"
UNBOUNDED_IN_FLIGHT = 1 << 20  # a gate made without a concurrency limit leaves it to its caller


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: when, its estimate, the totals sent up to and including it, its window entry."""

    time: float
    tokens: int
    sent_requests: float
    sent_tokens: float
    window: Entry | None = None

    def sent(self, kind: Kind) -> float:
        """Return the total of ``kind`` sent up to and including this request."""
        return self.sent_requests if kind == "requests" else self.sent_tokens


class RateGate:
    """The gate every teacher request passes (see the module docstring)."""

    def __init__(
        self,
        rpm: int,
        tpm: int,
        *,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_S,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        adaptive: bool = True,
        clock: Clock | None = None,
        outer: GlobalGate | None = None,
        ceiling: AsyncLimiter | None = None,
        concurrency: ConcurrencyLimit | None = None,
    ):
        """Make a gate for ``rpm``/``tpm``; ``adaptive=False`` ignores rate-limit headers, never cuts the pace
        and has no breaker. On the real clock the RPM ceiling is made here unless ``ceiling`` is given."""
        self._clock: Clock = clock or MonotonicClock()
        now = self._clock.now()
        self.max_retry_after = max_retry_after
        self.adaptive = adaptive
        self._burst_seconds = burst_seconds
        self._limits: dict[Kind, float] = {"requests": float(rpm), "tokens": float(tpm)}
        self._buckets: dict[Kind, LeakyBucket] = {
            kind: LeakyBucket(BucketShape.for_limit(self._limits[kind], burst_seconds), now) for kind in KINDS
        }
        self._window = SlidingWindow(float(tpm))
        self.ceiling = ceiling if ceiling is not None or clock is not None else rpm_ceiling(rpm, burst_seconds)
        self._endpoint: dict[Kind, EndpointAllowance] = {}
        self._sent: dict[Kind, float] = {"requests": 0.0, "tokens": 0.0}
        self._holds = Holds(now, max_retry_after)
        self._lock = asyncio.Lock()
        self._given_back = asyncio.Event()  # set by a give-back: the waiting request need not sleep it out
        self._calibrations: dict[str, ImageCalibration] = {}
        self.outer = outer
        self._answered = False  # an answer came back (its headers, if any, were read first)
        # Requests in flight (``concurrency.py``): fixed unless the run asked for ``auto``.
        self.concurrency = concurrency or ConcurrencyLimit(UNBOUNDED_IN_FLIGHT, adaptive=False, clock=clock)

    @property
    def sends_rate_limit_headers(self) -> bool:
        """Return whether the endpoint has sent ``x-ratelimit-*`` headers (a hosted API; a self-hosted server does not)."""
        return bool(self._endpoint)

    @property
    def answers_without_headers(self) -> bool:
        """Return whether the endpoint has answered and sent no rate-limit headers (a self-hosted server).

        Before its first answer nothing is known: an endpoint is not taken for self-hosted by default.
        """
        return self._answered and not self._endpoint

    @property
    def pace(self) -> float:
        """Return the share of the limits the gate uses now (1.0 until a 429)."""
        return self._holds.pace(self._clock.now())

    def limit(self, kind: Kind) -> float:
        """Return the per-minute limit the gate follows for ``kind`` (the endpoint's when lower)."""
        return self._limits[kind]

    async def acquire(self, estimated_tokens: int) -> Admission:
        """Wait until one request of ``estimated_tokens`` may go; raise TransientTeacherError when the
        endpoint asks for a wait longer than ``max_retry_after``, and the stop's error once stopped."""
        async with self._lock:
            while True:
                if self._holds.stopped is not None:
                    raise self._holds.stopped
                now = self._clock.now()
                reason, wait = self._longest_wait(estimated_tokens, now)
                if wait < WAIT_RESOLUTION_S:
                    break
                if reason not in (OWN_PACE, LAST_MINUTE):
                    if wait > self.max_retry_after:
                        raise TransientTeacherError(
                            f"the endpoint asks to wait {wait:.0f} s ({reason}), longer than "
                            f"max_retry_after {self.max_retry_after:g} s: not waiting",
                            status_code=429,
                            retry_after=wait,
                        )
                    self._holds.say_hold(now, wait, reason)
                await self._sleep(wait)
            if self.ceiling is not None:
                await self.ceiling.acquire()  # the hard cap: waits only where the pace above would break it
                now = self._clock.now()
            slot = await self.outer.reserve(estimated_tokens) if self.outer is not None else 0.0
            if slot >= WAIT_RESOLUTION_S:  # booked only now that this worker may go (point 6 above)
                await self._clock.sleep(slot)
                now = self._clock.now()
            return self._admit(estimated_tokens, now)

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when an answer gives tokens back meanwhile (then look again)."""
        self._given_back.clear()
        sleeping = asyncio.ensure_future(self._clock.sleep(seconds))
        woken = asyncio.ensure_future(self._given_back.wait())
        try:
            await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (sleeping, woken):
                waiting.cancel()

    def calibration(self, model: str, *, trusted: bool) -> ImageCalibration:
        """Return the image estimate ``model``'s answers teach this gate (one per model, made on first use)."""
        found = self._calibrations.get(model)
        if found is None:
            found = self._calibrations[model] = ImageCalibration(model, trusted=trusted)
        return found

    async def settle(self, estimated_tokens: int, counted_tokens: int | None, admission: Admission | None = None) -> None:
        """An answer came back: correct its estimate by what the endpoint counted (``usage``), both ways.

        Under-booked tokens are charged (the next requests wait for them); over-booked ones are given
        back at once, so a cautious estimate does not slow the run past its first answers. The answer
        also ends a run of 429s (the breaker's count).
        """
        self._holds.answered()
        self._answered = True
        if counted_tokens is None or counted_tokens == estimated_tokens:
            return
        delta = float(counted_tokens - estimated_tokens)
        now = self._clock.now()
        bucket = self._buckets["tokens"]
        bucket.drain(now, self._holds.pace(now))
        given_back = delta
        if delta < 0 and admission is not None:
            # The bucket drains oldest first: what this request still holds in it is the level less what
            # was admitted after it. Only that can be given back; the rest is later requests' to drain.
            still_held = max(0.0, bucket.level - (self._sent["tokens"] - admission.sent_tokens))
            given_back = max(delta, -still_held)
        bucket.level = max(0.0, bucket.level + given_back)
        self._sent["tokens"] += delta
        if admission is not None and admission.window is not None:
            self._window.settle(admission.window, delta)
        if (allowance := self._endpoint.get("tokens")) is not None:
            allowance.level = min(allowance.limit, allowance.level - delta)
        if delta < 0:
            self._given_back.set()  # the request waiting on the old debt looks again now
        if self.outer is not None:
            await self.outer.charge(int(delta))

    def observe(self, headers: Mapping[str, str], admission: Admission | None = None) -> None:
        """Follow an answer's ``x-ratelimit-*`` headers; ``admission`` is that request's, to project them."""
        if not self.adaptive:
            return
        now = self._clock.now()
        for kind in KINDS:
            view = RateLimitHeaders.parse(headers, kind)
            if view is None or view.remaining is None:
                continue
            if view.limit is not None and view.limit < self._limits[kind]:
                self._adopt_limit(kind, view.limit, now)
            limit = view.limit if view.limit is not None else self._limits[kind]
            rate = limit / WINDOW_SECONDS
            if view.reset_s and limit > view.remaining:
                rate = min(rate, (limit - view.remaining) / view.reset_s)
            rate = max(rate, limit / WINDOW_SECONDS / 1000)  # a zero rate would never refill
            # Endpoints stamp ``remaining`` when they count the request or when they answer it. Counted
            # then, it has refilled since and lost what was sent after; answered now, it is current. The
            # lower of the two is never more than the endpoint has.
            drift = 0.0
            if admission is not None:
                refilled = rate * max(0.0, now - admission.time)
                drift = min(0.0, refilled - (self._sent[kind] - admission.sent(kind)))
            level = min(limit, view.remaining + drift)
            self._endpoint[kind] = EndpointAllowance(level, limit, rate, now)
            self.concurrency.follow_gate()

    def throttled(self, retry_after: float | None, admission: Admission | None = None) -> None:
        """Answer a 429: cut the pace once per burst, count it toward the breaker, hold everyone for ``retry_after``."""
        now = self._clock.now()
        sent_before = admission.sent_requests if admission is not None else None
        if self.adaptive and self._holds.new_burst(sent_before):
            for bucket in self._buckets.values():  # what drained so far drained at the old pace
                bucket.drain(now, self._holds.pace(now))
            self._holds.cut_pace(now, self._sent["requests"])
        if self.adaptive:
            self._holds.refused(now, sent_before, self._sent["requests"])
        if retry_after is not None and retry_after > 0:
            self.pause(retry_after)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the endpoint said so with Retry-After)."""
        self._holds.pause(self._clock.now(), seconds)

    def stop(self, error: FatalRunError) -> None:
        """Stop every request for good: ``error`` is said once, and raised by every ``acquire`` from now on."""
        self._holds.stop(error)

    def _adopt_limit(self, kind: Kind, limit: float, now: float) -> None:
        bucket = self._buckets[kind]
        bucket.drain(now, self._holds.pace(now))
        level = bucket.level
        self._buckets[kind] = LeakyBucket(BucketShape.for_limit(limit, self._burst_seconds), now)
        self._buckets[kind].level = level
        self._limits[kind] = limit
        if kind == "tokens":
            self._window.limit = limit
        run_logger().warning(
            "rate limit: the endpoint allows %d %s per minute, fewer than configured: following the endpoint",
            limit, kind,
        )  # fmt: skip

    def _longest_wait(self, tokens: int, now: float) -> tuple[str, float]:
        """Return why and how long the next request must wait (``OWN_PACE`` or ``LAST_MINUTE``: the gate's own)."""
        pace = self._holds.pace(now)
        reason, wait = self._holds.reason, self._holds.resume_at - now
        for kind in KINDS:
            amount = _amount(kind, tokens)
            bucket_wait = self._buckets[kind].wait(amount, now, pace)
            if bucket_wait > wait:
                reason, wait = OWN_PACE, bucket_wait
            allowance = self._endpoint.get(kind)
            if allowance is not None and (endpoint_wait := allowance.wait(amount, now)) > wait:
                reason, wait = f"the endpoint reports {max(0.0, allowance.level):.0f} {kind} left", endpoint_wait
        if (window_wait := self._window.wait(float(tokens), now)) > wait:
            reason, wait = LAST_MINUTE, window_wait
        return reason, wait

    def _admit(self, tokens: int, now: float) -> Admission:
        for kind in KINDS:
            amount = _amount(kind, tokens)
            self._buckets[kind].level += amount
            self._sent[kind] += amount
            if kind in self._endpoint:
                self._endpoint[kind].level -= amount
        entry = self._window.add(float(tokens), now)
        return Admission(now, tokens, self._sent["requests"], self._sent["tokens"], entry)


def _amount(kind: Kind, tokens: int) -> float:
    return 1.0 if kind == "requests" else float(tokens)
