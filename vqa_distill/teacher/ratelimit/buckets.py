"""The meters the rate gates are built of: a leaky bucket shaped from a per-minute limit, and an endpoint's allowance.

Shared by the per-process gate (gate.py) and the global one (global_gate.py, whose Lua script runs the
same leaky-bucket arithmetic in Redis), so both hold a limit the same way: a bucket of capacity C
draining at R admits at most C + R*W in any window of W seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BURST_SECONDS = 1.0
WINDOW_SECONDS = 60.0  # the limits are per minute


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


class LeakyBucket:
    """A meter that each admission fills and time drains at ``rate x pace``; over capacity is debt."""

    def __init__(self, shape: BucketShape, now: float):
        self.shape = shape
        self.level = 0.0
        self._updated = now

    def drain(self, now: float, pace: float) -> None:
        """Let out what drained since the last look, at ``pace`` times the shape's rate."""
        self.level = max(0.0, self.level - (now - self._updated) * self.shape.rate_per_second * pace)
        self._updated = max(self._updated, now)

    def wait(self, amount: float, now: float, pace: float) -> float:
        """Return the seconds until ``amount`` fits (an amount above capacity fits an empty bucket)."""
        self.drain(now, pace)
        excess = self.level - max(0.0, self.shape.capacity - amount)
        return max(0.0, excess / (self.shape.rate_per_second * pace))


@dataclass
class EndpointAllowance:
    """One endpoint limit as the gate last heard it: what is left, refilling at the endpoint's rate."""

    level: float
    limit: float
    rate_per_second: float
    updated: float

    def refill(self, now: float) -> None:
        """Add what the endpoint restored since the last look, up to its limit."""
        self.level = min(self.limit, self.level + max(0.0, now - self.updated) * self.rate_per_second)
        self.updated = max(self.updated, now)

    def wait(self, amount: float, now: float) -> float:
        """Return the seconds until the endpoint would hold ``amount`` (never more than its limit)."""
        self.refill(now)
        missing = min(amount, self.limit) - self.level
        return max(0.0, missing / self.rate_per_second) if missing > 0 else 0.0
