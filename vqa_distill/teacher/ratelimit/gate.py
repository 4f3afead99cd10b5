"""The gate every teacher request passes: requests and tokens per minute, and what the endpoint says.

Three things decide when a request may go:

1. Two leaky buckets (requests, tokens). A bucket of capacity C draining at R admits at most
   C + R*W in any window of W seconds, so each holds ``burst_seconds`` worth and drains at
   (limit - C)/60: no 60-second window exceeds the limit, and the steady rate is (1 - burst/60) of it.
   A request larger than C goes when the bucket is empty. Each answer's ``usage`` then settles its
   estimate both ways: tokens beyond it are charged (the bucket may go over C, and the next requests
   wait for them), tokens it over-booked are given back. The estimate itself learns from the answers
   (``calibration.py``): a model the table does not know starts cautious, then adopts what it measured.
2. The endpoint's own view, from its ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
   headers. Each answer's ``remaining`` is projected to now (never above what it says, lowered when
   more was sent since that request than the endpoint restored meanwhile); it then refills at the
   endpoint's rate and loses each request sent. A request waits while that projection cannot hold it:
   the gate slows down before the endpoint says no. A ``limit`` header below the configured one
   replaces it.
3. 429s. A ``Retry-After`` holds every request that long, and each 429 cuts the pace (the share of
   the limits the buckets drain at) by ``PACE_CUT``; the pace grows back by ``PACE_RECOVERY_PER_S``
   each second. A wait the endpoint imposes that is longer than ``max_retry_after`` is not waited:
   the request fails as a transient error at once and the task's retry policy decides.

4. Several workers: ``outer``, the limit they share (``global_gate.py``). After the local waits, under
   the lock, the request books its global slot and sleeps until it, so it leaves exactly then and the
   local buckets count it then: both bounds hold, and a worker never holds more than one booking.

The buckets are not aiolimiter's: its bucket cannot change its rate after a 429, take a charge
beyond capacity when ``usage`` exceeds the estimate, or run on a clock a test drives; those three are
what this gate is for, and its bucket is the 20 lines of ``LeakyBucket`` (buckets.py).

Every pause of a second or more is one log line: the Prefect run logger inside a run, else ``logging``.
The gate is bound to one event loop (its lock is), so one is made per loop. Time comes from a
``Clock``, so tests can drive it without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vqa_distill.errors import TransientTeacherError
from vqa_distill.teacher.ratelimit.buckets import (
    DEFAULT_BURST_SECONDS,
    WINDOW_SECONDS,
    BucketShape,
    EndpointAllowance,
    LeakyBucket,
)
from vqa_distill.teacher.ratelimit.calibration import ImageCalibration
from vqa_distill.teacher.ratelimit.clock import Clock, MonotonicClock
from vqa_distill.teacher.ratelimit.headers import KINDS, Kind, RateLimitHeaders
from vqa_distill.teacher.run_log import run_logger

if TYPE_CHECKING:
    from vqa_distill.teacher.ratelimit.global_gate import GlobalGate

DEFAULT_MAX_RETRY_AFTER_S = 60.0  # longer waits asked by the endpoint fail the attempt instead
PACE_CUT = 0.7  # a 429 multiplies the pace (share of the limits used) by this
MIN_PACE = 0.1  # ...but never below this share
PACE_RECOVERY_PER_S = 0.01  # share of the limits regained per second without a 429 (0.7 -> 1 in 30 s)
LOG_PAUSE_MIN_S = 1.0  # shorter holds from the headers are pacing, not pauses worth a log line
WAIT_RESOLUTION_S = 1e-6  # shorter waits are float noise: sleeping them could not move the clock

@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: when, its estimate, and the totals sent up to and including it."""

    time: float
    tokens: int
    sent_requests: float
    sent_tokens: float

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
    ):
        """Make a gate for ``rpm``/``tpm``; ``adaptive=False`` ignores rate-limit headers and never cuts the pace."""
        self._clock: Clock = clock or MonotonicClock()
        now = self._clock.now()
        self.max_retry_after = max_retry_after
        self.adaptive = adaptive
        self._burst_seconds = burst_seconds
        self._limits: dict[Kind, float] = {"requests": float(rpm), "tokens": float(tpm)}
        self._buckets: dict[Kind, LeakyBucket] = {
            kind: LeakyBucket(BucketShape.for_limit(self._limits[kind], burst_seconds), now) for kind in KINDS
        }
        self._endpoint: dict[Kind, EndpointAllowance] = {}
        self._sent: dict[Kind, float] = {"requests": 0.0, "tokens": 0.0}
        self._resume_at = now  # nobody is sent before this (a 429's Retry-After)
        self._pace_base = 1.0
        self._last_cut = float("-inf")  # when the pace was last cut
        self._sent_at_cut = -1.0  # requests sent by then: 429s for those belong to that cut
        self._logged_until = now
        self._lock = asyncio.Lock()
        self._calibrations: dict[str, ImageCalibration] = {}
        self.outer = outer

    @property
    def pace(self) -> float:
        """Return the share of the limits the gate uses now (1.0 until a 429)."""
        return self._pace(self._clock.now())

    def limit(self, kind: Kind) -> float:
        """Return the per-minute limit the gate follows for ``kind`` (the endpoint's when lower)."""
        return self._limits[kind]

    async def acquire(self, estimated_tokens: int) -> Admission:
        """Wait until one request of ``estimated_tokens`` may go; raise TransientTeacherError when the
        endpoint asks for a wait longer than ``max_retry_after``."""
        async with self._lock:
            while True:
                now = self._clock.now()
                reason, wait = self._longest_wait(estimated_tokens, now)
                if wait < WAIT_RESOLUTION_S:
                    break
                if reason != "pace" and wait > self.max_retry_after:
                    raise TransientTeacherError(
                        f"the endpoint asks to wait {wait:.0f} s ({reason}), longer than "
                        f"max_retry_after {self.max_retry_after:g} s: not waiting",
                        status_code=429,
                        retry_after=wait,
                    )
                new_hold = now + wait > self._logged_until + LOG_PAUSE_MIN_S
                if reason != "pace" and wait >= LOG_PAUSE_MIN_S and new_hold:
                    self._logged_until = now + wait
                    run_logger().info("rate limit: holding requests %.1f s (%s)", wait, reason)
                await self._clock.sleep(wait)
            slot = await self.outer.reserve(estimated_tokens) if self.outer is not None else 0.0
            if slot >= WAIT_RESOLUTION_S:  # booked only now that this worker may go (point 4 above)
                await self._clock.sleep(slot)
                now = self._clock.now()
            return self._admit(estimated_tokens, now)

    def calibration(self, model: str, *, trusted: bool) -> ImageCalibration:
        """Return the image estimate ``model``'s answers teach this gate (one per model, made on first use)."""
        found = self._calibrations.get(model)
        if found is None:
            found = self._calibrations[model] = ImageCalibration(model, trusted=trusted)
        return found

    async def settle(self, estimated_tokens: int, counted_tokens: int | None) -> None:
        """Correct a request's estimate by what the endpoint counted (``usage`` is the truth), both ways.

        Under-booked tokens are charged (the next requests wait for them); over-booked ones are given
        back at once, so a cautious estimate does not slow the run past its first answers.
        """
        if counted_tokens is None or counted_tokens == estimated_tokens:
            return
        delta = float(counted_tokens - estimated_tokens)
        now = self._clock.now()
        bucket = self._buckets["tokens"]
        bucket.drain(now, self._pace(now))
        bucket.level = max(0.0, bucket.level + delta)
        self._sent["tokens"] += delta
        if (allowance := self._endpoint.get("tokens")) is not None:
            allowance.level = min(allowance.limit, allowance.level - delta)
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

    def throttled(self, retry_after: float | None, admission: Admission | None = None) -> None:
        """Answer a 429: cut the pace once per burst of them, and hold everyone for ``retry_after``."""
        now = self._clock.now()
        if self.adaptive and (admission is None or admission.sent_requests > self._sent_at_cut):
            # A 429 for a request sent before the last cut is old news: the pace was cut for it already.
            for bucket in self._buckets.values():
                bucket.drain(now, self._pace(now))
            self._pace_base = max(MIN_PACE, self._pace(now) * PACE_CUT)
            self._last_cut = now
            self._sent_at_cut = self._sent["requests"]
            run_logger().info(
                "rate limit: 429 from the endpoint, pace lowered to %.0f %% of the limits", 100 * self._pace_base
            )
        if retry_after is not None and retry_after > 0:
            self.pause(retry_after)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the endpoint said so with Retry-After)."""
        now = self._clock.now()
        resume_at = now + seconds
        if resume_at <= self._resume_at:
            return
        # One line per pause: a new one, or one pushed out by a second or more (a burst of 429s
        # asking for about the same wait is one pause).
        worth_a_line = self._resume_at <= now or resume_at - self._resume_at >= LOG_PAUSE_MIN_S
        self._resume_at = resume_at
        if seconds > self.max_retry_after:
            run_logger().warning(
                "rate limit: the endpoint asks to wait %.0f s (Retry-After), longer than max_retry_after %g s: "
                "requests fail now and are retried per --max-retries instead of waiting",
                seconds, self.max_retry_after,
            )  # fmt: skip
        elif worth_a_line:
            run_logger().info("rate limit: pausing all requests for %.1f s (Retry-After)", seconds)
        self._logged_until = max(self._logged_until, resume_at)

    def _pace(self, now: float) -> float:
        return min(1.0, self._pace_base + PACE_RECOVERY_PER_S * max(0.0, now - self._last_cut))

    def _adopt_limit(self, kind: Kind, limit: float, now: float) -> None:
        bucket = self._buckets[kind]
        bucket.drain(now, self._pace(now))
        level = bucket.level
        self._buckets[kind] = LeakyBucket(BucketShape.for_limit(limit, self._burst_seconds), now)
        self._buckets[kind].level = level
        self._limits[kind] = limit
        run_logger().warning(
            "rate limit: the endpoint allows %d %s per minute, fewer than configured: following the endpoint",
            limit, kind,
        )  # fmt: skip

    def _longest_wait(self, tokens: int, now: float) -> tuple[str, float]:
        """Return why and how long the next request must wait; the reason is "pace" for the buckets."""
        pace = self._pace(now)
        reason, wait = "Retry-After", self._resume_at - now
        for kind in KINDS:
            amount = _amount(kind, tokens)
            bucket_wait = self._buckets[kind].wait(amount, now, pace)
            if bucket_wait > wait:
                reason, wait = "pace", bucket_wait
            allowance = self._endpoint.get(kind)
            if allowance is not None and (endpoint_wait := allowance.wait(amount, now)) > wait:
                reason, wait = f"the endpoint reports {max(0.0, allowance.level):.0f} {kind} left", endpoint_wait
        return reason, wait

    def _admit(self, tokens: int, now: float) -> Admission:
        for kind in KINDS:
            amount = _amount(kind, tokens)
            self._buckets[kind].level += amount
            self._sent[kind] += amount
            if kind in self._endpoint:
                self._endpoint[kind].level -= amount
        return Admission(now, tokens, self._sent["requests"], self._sent["tokens"])


def _amount(kind: Kind, tokens: int) -> float:
    return 1.0 if kind == "requests" else float(tokens)
