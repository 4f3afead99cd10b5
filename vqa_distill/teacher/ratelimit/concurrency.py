"""How many requests may be in flight at an endpoint: fixed, or found by watching the endpoint (``auto``).

A self-hosted server (vLLM, TGI) sends no rate-limit headers and never a 429: it has K slots and a
queue, and past them it answers 503 or times out. Its knee is where one more request in flight only
adds queueing: latency grows, throughput does not. ``auto`` finds it with AIMD on latency and overload:

- it starts at ``AUTO_START`` requests in flight;
- an answer whose latency stays within ``LATENCY_TOLERANCE`` times the best seen adds
  1/limit (one more request per round trip: additive increase);
- an answer slower than that (the server queues), or an overload answer (503, timeout), multiplies the
  limit by ``LATENCY_DECREASE`` or ``OVERLOAD_DECREASE``, once per round trip: only answers to requests
  sent after the last decrease may decrease it again, so one burst of 503s halves it once;
- it stays within [1, ``maximum``] (``--concurrency``'s bound).

Once the endpoint has sent rate-limit headers the rate gate rules (``follow_gate``): the limit opens to
``maximum`` and stops adapting, so a hosted API is paced by its allowance, not by latency. A fixed limit
(``--concurrency N``) never moves. Each move of the whole number is one log line; ``peak`` and the
final limit go to the run's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vqa_distill.teacher.ratelimit.clock import Clock, MonotonicClock
from vqa_distill.teacher.run_log import run_logger

AUTO_START = 4  # requests in flight before anything was measured: low, a small server is not flooded
LATENCY_TOLERANCE = 2.0  # latency up to this multiple of the best seen is the server working, not queueing
LATENCY_DECREASE = 0.9  # factor on the limit when latency says the server queues
OVERLOAD_DECREASE = 0.5  # factor on the limit after a 503 or a timeout
BEST_LATENCY_DECAY = 1.01  # the best latency seen creeps up by this factor per answer, so an old fluke expires


@dataclass(slots=True)
class Slot:
    """One request in flight: when it was let through, and how it ended (set by ``done``)."""

    started: float
    latency_s: float | None = None
    overloaded: bool = False

    def done(self, latency_s: float | None = None, *, overloaded: bool = False) -> None:
        """Say how the request ended: answered after ``latency_s``, or an overload answer."""
        self.latency_s, self.overloaded = latency_s, overloaded


class ConcurrencyLimit:
    """Requests in flight at one endpoint: a semaphore whose size is fixed or adapts (module docstring)."""

    def __init__(self, maximum: int, *, adaptive: bool, start: int = AUTO_START, clock: Clock | None = None):
        """``maximum`` bounds the limit; ``adaptive=False`` holds it at ``maximum``."""
        self._clock: Clock = clock or MonotonicClock()
        self.maximum = maximum
        self.adaptive = adaptive
        self.auto = adaptive  # asked for auto (``adaptive`` turns off once the rate gate rules)
        self._limit = float(min(start, maximum) if adaptive else maximum)
        self.peak = int(self._limit)
        self._in_flight = 0
        self._best: float | None = None
        self._last_decrease = float("-inf")
        self._changed = asyncio.Event()
        self.overloads = 0

    @property
    def limit(self) -> int:
        """Return the requests allowed in flight now."""
        return max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        """Return the requests in flight now."""
        return self._in_flight

    def describe(self) -> str:
        """Return the limit as the run's summary shows it."""
        if not self.auto:
            return f"fixed {self.maximum}"
        if not self.adaptive:
            return f"auto: {self.limit}, the bound (rate-limit headers: the rate gate rules)"
        return f"auto: final {self.limit}, peak {self.peak} (bound {self.maximum}, {self.overloads} overload answers)"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for room, hold it while the request is in flight; feed how it ended to the limit."""
        while self._in_flight >= self.limit:
            self._changed.clear()
            await self._changed.wait()
        self._in_flight += 1
        slot = Slot(self._clock.now())
        try:
            yield slot
        finally:
            self._in_flight -= 1
            self._learn(slot)
            self._changed.set()

    def follow_gate(self) -> None:
        """The endpoint sent rate-limit headers: its allowance rules, so open to the bound and stop adapting."""
        if self.adaptive:
            self.adaptive = False
            self._move(float(self.maximum), "the endpoint sends rate-limit headers: the rate gate rules")

    def _learn(self, slot: Slot) -> None:
        if not self.adaptive:
            return
        if slot.overloaded:
            self.overloads += 1
            self._decrease(slot, OVERLOAD_DECREASE, "overload answer (503 or timeout)")
            return
        latency = slot.latency_s
        if latency is None:
            return  # failed otherwise: says nothing about the server's load
        self._best = latency if self._best is None else min(self._best * BEST_LATENCY_DECAY, latency)
        if latency > self._best * LATENCY_TOLERANCE:
            self._decrease(slot, LATENCY_DECREASE, f"latency {latency:.2f} s > {LATENCY_TOLERANCE:g}x best")
        elif self._in_flight + 1 >= self.limit:  # only a limit in use has earned a raise
            self._move(self._limit + 1.0 / self._limit, "latency near the best seen")

    def _decrease(self, slot: Slot, factor: float, reason: str) -> None:
        if slot.started < self._last_decrease:
            return  # sent before the last decrease: that decrease answered it already
        self._last_decrease = self._clock.now()
        self._move(self._limit * factor, reason)

    def _move(self, limit: float, reason: str) -> None:
        before = self.limit
        self._limit = min(float(self.maximum), max(1.0, limit))
        self.peak = max(self.peak, self.limit)
        if self.limit != before:
            run_logger().info("concurrency limit %d -> %d: %s", before, self.limit, reason)
            self._changed.set()
