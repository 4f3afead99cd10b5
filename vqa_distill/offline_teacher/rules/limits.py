"""Requests-per-minute and tokens-per-minute limits, enforced and reported the way OpenAI does.

Each limit is a token bucket per model that holds at most one minute's allowance and refills
continuously at ``limit / 60`` per second: OpenAI's limits replenish continuously rather than at the
top of each minute, so a client that waits the ``Retry-After`` it was given always gets through.
A request counts ``1`` against RPM and ``prompt tokens + requested output cap`` against TPM, as
OpenAI counts ``max_tokens`` before any output exists. A refused request consumes nothing.
Header and message wording follow https://platform.openai.com/docs/guides/rate-limits.
Used from the event loop only: the check and the consumption happen with no ``await`` in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ORGANIZATION = "org-offline"  # named in 429 messages, where OpenAI names the caller's organization
WINDOW_S = 60.0  # the limits are per minute
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
FLOAT_SLACK = 1e-9  # float noise ignored when a bucket holds exactly what a request needs

LimitKind = Literal["requests", "tokens"]
LIMIT_NAMES: dict[str, str] = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as OpenAI's headers write it: ``"120ms"``, ``"1s"``, ``"6m0s"``, ``"1m30.5s"``."""
    ms = max(0, math.ceil(seconds * 1000 - FLOAT_SLACK))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def format_seconds(seconds: float) -> str:
    """Return ``seconds`` for ``Retry-After``: a decimal with at most 3 places, e.g. ``"1.25"``."""
    return f"{math.ceil(seconds * 1000 - FLOAT_SLACK) / 1000:.3f}".rstrip("0").rstrip(".")


@dataclass
class Bucket:
    """One continuously refilling allowance: ``capacity`` per minute, full when created."""

    capacity: int
    level: float
    updated: float  # monotonic seconds of the last refill

    @property
    def rate_per_s(self) -> float:
        """Return how much the bucket refills per second."""
        return self.capacity / WINDOW_S

    def refill(self, now: float) -> None:
        """Add what accrued since the last refill, up to ``capacity``."""
        self.level = min(float(self.capacity), self.level + (now - self.updated) * self.rate_per_s)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Return the seconds until the bucket holds ``amount`` (0 when it does now)."""
        return max(0.0, (amount - self.level) / self.rate_per_s)

    def reset_in(self) -> float:
        """Return the seconds until the bucket is full again."""
        return self.wait_for(self.capacity)


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the limit it broke, and the figures OpenAI's 429 reports."""

    kind: LimitKind
    limit: int
    used: int
    requested: int
    retry_after_s: float | None  # None: the request can never fit (larger than the whole limit)

    def message(self, model: str) -> str:
        """Return OpenAI's wording of this 429."""
        name = LIMIT_NAMES[self.kind]
        where = f"for {model} in organization {ORGANIZATION} on {name}"
        if self.retry_after_s is None:
            return (
                f"Request too large {where}: Limit {self.limit}, Requested {self.requested}. "
                f"The input or output tokens must be reduced in order to run successfully. "
                f"Visit {RATE_LIMITS_URL} to learn more."
            )
        return (
            f"Rate limit reached {where}: Limit {self.limit}, Used {self.used}, Requested {self.requested}. "
            f"Please try again in {format_duration(self.retry_after_s)}. "
            f"Visit {RATE_LIMITS_URL} to learn more."
        )

    def headers(self) -> dict[str, str]:
        """Return ``Retry-After`` (fractional seconds) and ``retry-after-ms``; none when waiting cannot help."""
        if self.retry_after_s is None:
            return {}
        return {
            "retry-after": format_seconds(self.retry_after_s),
            "retry-after-ms": str(math.ceil(self.retry_after_s * 1000 - FLOAT_SLACK)),
        }


@dataclass
class RateLimiter:
    """The RPM and TPM buckets of every model; ``None`` limits are unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, LimitKind], Bucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Return whether any limit is set."""
        return self.rpm is not None or self.tpm is not None

    def configure(self, rpm: int | None, tpm: int | None) -> None:
        """Install new limits; every bucket starts full again."""
        self.rpm, self.tpm = rpm, tpm
        self._buckets.clear()

    def _limits(self) -> dict[LimitKind, int]:
        pairs: list[tuple[LimitKind, int | None]] = [("requests", self.rpm), ("tokens", self.tpm)]
        return {kind: limit for kind, limit in pairs if limit is not None}

    def _bucket(self, model: str, kind: LimitKind, capacity: int, now: float) -> Bucket:
        bucket = self._buckets.get((model, kind))
        if bucket is None:
            bucket = self._buckets[(model, kind)] = Bucket(capacity, float(capacity), now)
        bucket.refill(now)
        return bucket

    def admit(self, model: str, tokens: int) -> Refusal | None:
        """Consume one request and ``tokens`` from ``model``'s buckets, or refuse and consume nothing."""
        now = self.clock()
        asked: dict[LimitKind, int] = {"requests": 1, "tokens": tokens}
        refusals: list[Refusal] = []
        buckets = []
        for kind, limit in self._limits().items():
            bucket = self._bucket(model, kind, limit, now)
            buckets.append((bucket, asked[kind]))
            if bucket.level + FLOAT_SLACK >= asked[kind]:
                continue
            retry = bucket.wait_for(asked[kind]) if asked[kind] <= limit else None
            used = min(limit, max(0, math.ceil(limit - bucket.level - FLOAT_SLACK)))
            refusals.append(Refusal(kind, limit, used, asked[kind], retry))
        if refusals:
            # Report the limit that takes longest to clear, so its Retry-After clears both.
            return max(refusals, key=lambda r: math.inf if r.retry_after_s is None else r.retry_after_s)
        for bucket, amount in buckets:
            bucket.level = max(0.0, bucket.level - amount)
        return None

    def headers(self, model: str) -> dict[str, str]:
        """Return the ``x-ratelimit-*`` headers describing ``model``'s buckets now."""
        now = self.clock()
        out: dict[str, str] = {}
        for kind, limit in self._limits().items():
            bucket = self._bucket(model, kind, limit, now)
            out[f"x-ratelimit-limit-{kind}"] = str(limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level + FLOAT_SLACK)))
            out[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.reset_in())
        return out

    def snapshot(self) -> dict[str, object]:
        """Return the limits and each model's remaining allowance, for the admin view."""
        now = self.clock()
        remaining: dict[str, dict[str, int]] = {}
        for (model, kind), bucket in sorted(self._buckets.items()):
            bucket.refill(now)
            remaining.setdefault(model, {})[kind] = max(0, math.floor(bucket.level + FLOAT_SLACK))
        return {"rpm": self.rpm, "tpm": self.tpm, "remaining": remaining}
