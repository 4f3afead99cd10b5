"""Requests-per-minute and tokens-per-minute limits, plus the cooldown a 429's Retry-After asks for.

aiolimiter is a leaky bucket: with capacity C and drain rate R, any window of W seconds admits at
most C + R*W. A bucket holding a whole minute (C = rpm) would let 2*rpm through in the first minute,
so the bucket holds ``burst_seconds`` worth and drains at (limit - C)/60: no 60-second window ever
exceeds the limit, and the steady rate is (1 - burst_seconds/60) of it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

DEFAULT_BURST_SECONDS = 1.0
WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class BucketShape:
    """Capacity and drain rate of one leaky bucket derived from a per-minute limit."""

    capacity: float
    rate_per_second: float

    @classmethod
    def for_limit(cls, per_minute: float, burst_seconds: float = DEFAULT_BURST_SECONDS) -> BucketShape:
        """Shape a bucket so no 60-second window admits more than ``per_minute``."""
        capacity = max(1.0, per_minute * burst_seconds / WINDOW_SECONDS)
        # Never drain slower than half the limit, even for absurdly small limits.
        rate = max(per_minute - capacity, per_minute / 2) / WINDOW_SECONDS
        return cls(capacity=capacity, rate_per_second=rate)

    def limiter(self) -> AsyncLimiter:
        """Build the aiolimiter bucket (capacity ``max_rate``, drained over ``time_period``)."""
        return AsyncLimiter(self.capacity, self.capacity / self.rate_per_second)


class RateGate:
    """The gate every teacher request passes: cooldown, then one request slot, then its tokens.

    Bound to the event loop that first uses it (aiolimiter is), so one is made per loop.
    """

    def __init__(self, rpm: int, tpm: int, burst_seconds: float = DEFAULT_BURST_SECONDS):
        self.requests = BucketShape.for_limit(rpm, burst_seconds)
        self.tokens = BucketShape.for_limit(tpm, burst_seconds)
        self._request_bucket = self.requests.limiter()
        self._token_bucket = self.tokens.limiter()
        self._resume_at = 0.0  # monotonic time before which nobody sends (a 429's Retry-After)

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait for the cooldown, a request slot and the estimated tokens."""
        await self._wait_cooldown()
        await self._request_bucket.acquire()
        await self._take_tokens(estimated_tokens)

    async def settle(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        """Charge the tokens the answer used beyond the estimate (``usage`` is the truth)."""
        if actual_tokens is not None and actual_tokens > estimated_tokens:
            await self._take_tokens(actual_tokens - estimated_tokens)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the endpoint said so with Retry-After)."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def _take_tokens(self, amount: int) -> None:
        # aiolimiter refuses an amount above capacity: take a large request in bucket-sized parts.
        remaining = float(amount)
        while remaining > 0:
            part = min(remaining, self.tokens.capacity)
            await self._token_bucket.acquire(part)
            remaining -= part

    async def _wait_cooldown(self) -> None:
        while (delay := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
