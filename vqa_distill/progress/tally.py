"""What a run has done so far, in numbers: a ``Tally`` the work feeds and a ``Snapshot`` every display reads.

A tally counts *items* (what the progress bar counts: requests, image x prompt units in questions
mode, batch lines, run folders) and, apart from them, the *requests* they made: answered now (paid,
with their tokens and cost), cached (no call) and failed. Two ways feed it:

- **by events**: the fan-out calls ``record`` for each outcome and ``advance`` for each finished item;
- **by polling**: a parent that only watches (a sharded run) calls ``observe`` with the totals it read.

Rates (requests, tokens and items per minute) cover the last ``RATE_WINDOW_S`` seconds, so the ETA
follows the run's recent pace, not its start-up. The projected cost is the spend so far plus the
mean cost of a paid item times the items left: cache hits and failures cost nothing, and a run that
is half cache hits is not projected at twice its spend. Time is read through ``clock`` so tests pass
a fake one; a lock makes the counters safe to read from the CLI's refresh thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

RATE_WINDOW_S = 60.0  # seconds of recent completions behind the per-minute rates and the ETA
SAMPLE_STEP_S = 1.0  # completions within one second share a sample: the window holds ~60 at any rate
SECONDS_PER_MINUTE = 60.0

Outcome = Literal["answered", "cached", "failed"]


@dataclass(frozen=True)
class Snapshot:
    """The tally at one moment, with its derived figures (rates per minute, ETA in seconds, USD)."""

    total: int
    done: int
    answered: int  # requests answered now: paid for by this run
    cached: int  # requests answered before (the ledger or Prefect's cache): no call, no cost
    failed: int
    prompt_tokens: int
    completion_tokens: int
    spend_usd: float | None  # None: an answer's model has no known price
    projected_usd: float | None  # None: no paid item yet, or the price is unknown
    requests_per_min: float
    tokens_per_min: float
    items_per_min: float
    eta_s: float | None  # None: no item finished within the window yet
    elapsed_s: float

    @property
    def left(self) -> int:
        """Return the items not finished yet."""
        return max(self.total - self.done, 0)

    @property
    def fraction(self) -> float:
        """Return the share of items finished, 0.0 to 1.0 (0.0 while the total is not known yet)."""
        return min(self.done / self.total, 1.0) if self.total else 0.0


@dataclass(frozen=True)
class _Sample:
    """Cumulative counts at time ``t``: rates are differences between two samples."""

    t: float
    items: int
    requests: int
    tokens: int


class Tally:
    """Counts, tokens and spend of one run, with a window of recent samples for its rates."""

    def __init__(self, total: int = 0, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.started = clock()
        self.total = total
        self.done = self.answered = self.cached = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.spend_usd = 0.0
        self.unpriced = 0  # paid answers whose model has no known price: the spend is then unknown
        self.paid_items = 0
        self.paid_items_usd = 0.0
        self.version = 0  # bumped on every change: a publisher skips an update when nothing moved
        self._samples: deque[_Sample] = deque([_Sample(self.started, 0, 0, 0)])
        self._lock = threading.Lock()

    # --- feeding --------------------------------------------------------------------------------
    def extend(self, items: int) -> None:
        """Add ``items`` more to do (a fan-out says how many it has when it starts)."""
        with self._lock:
            self.total += items
            self._changed()

    def record(
        self, outcome: Outcome, *, count: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0,
        cost_usd: float | None = 0.0,
    ) -> None:  # fmt: skip
        """Count ``count`` requests with one outcome; an answer brings its tokens and cost (None: no price)."""
        with self._lock:
            if outcome == "answered":
                self.answered += count
                self.prompt_tokens += prompt_tokens
                self.completion_tokens += completion_tokens
                if cost_usd is None:
                    self.unpriced += count
                else:
                    self.spend_usd += cost_usd
            elif outcome == "cached":
                self.cached += count
            else:
                self.failed += count
            self._changed()

    def advance(self, items: int = 1, *, paid: bool = False, cost_usd: float | None = 0.0) -> None:
        """Count ``items`` finished; ``paid`` ones (with what they cost) set the projection of the rest."""
        with self._lock:
            self.done += items
            if paid and cost_usd is not None:
                self.paid_items += items
                self.paid_items_usd += cost_usd
            self._changed()

    def observe(
        self, *, done: int, answered: int, cached: int, failed: int, prompt_tokens: int, completion_tokens: int,
        spend_usd: float | None,
    ) -> None:  # fmt: skip
        """Set the counts read from elsewhere (a parent reading its shards' ledger); each request is an item."""
        with self._lock:
            before = (self.done, self.answered, self.cached, self.failed, self.prompt_tokens, self.completion_tokens)
            self.done, self.answered, self.cached, self.failed = done, answered, cached, failed
            self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
            self.unpriced = 0 if spend_usd is not None else 1  # the reader could not price every answer
            self.spend_usd = spend_usd or 0.0
            self.paid_items, self.paid_items_usd = answered, self.spend_usd
            if before != (done, answered, cached, failed, prompt_tokens, completion_tokens):
                self._changed()

    def _changed(self) -> None:
        """Bump the version and sample the cumulative counts (one sample per ``SAMPLE_STEP_S``)."""
        self.version += 1
        now = self.clock()
        sample = _Sample(now, self.done, self.answered + self.failed, self.prompt_tokens + self.completion_tokens)
        if len(self._samples) > 1 and now - self._samples[-1].t < SAMPLE_STEP_S:
            # The same second: the newest sample keeps its time and takes the latest counts.
            self._samples[-1] = _Sample(self._samples[-1].t, sample.items, sample.requests, sample.tokens)
        else:
            self._samples.append(sample)
        # Keep one sample at or before the window's start: it is the baseline of the rates.
        while len(self._samples) > 1 and self._samples[1].t <= now - RATE_WINDOW_S:
            self._samples.popleft()

    # --- reading --------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Return the counts now, with rates over the last minute, the ETA and the projected cost."""
        with self._lock:
            now = self.clock()
            base = self._baseline(now)
            # Nothing happened between the baseline and the window's start: count from the start, not before.
            span = now - max(base.t, now - RATE_WINDOW_S)
            requests = self.answered + self.failed
            tokens = self.prompt_tokens + self.completion_tokens

            def per_minute(count: int) -> float:
                return count / span * SECONDS_PER_MINUTE if span > 0 else 0.0

            items_per_min = per_minute(self.done - base.items)
            left = max(self.total - self.done, 0)
            if not self.total:  # the work is not planned yet: nothing to estimate from
                eta_s = None
            else:
                eta_s = 0.0 if not left else (left / items_per_min * SECONDS_PER_MINUTE if items_per_min else None)
            spend = None if self.unpriced else round(self.spend_usd, 6)
            return Snapshot(
                total=self.total, done=self.done, answered=self.answered, cached=self.cached, failed=self.failed,
                prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, spend_usd=spend,
                projected_usd=self._projected(spend, left), requests_per_min=per_minute(requests - base.requests),
                tokens_per_min=per_minute(tokens - base.tokens), items_per_min=items_per_min, eta_s=eta_s,
                elapsed_s=now - self.started,
            )  # fmt: skip

    def _baseline(self, now: float) -> _Sample:
        """Return the counts as they were when the window began: the last sample at or before its start."""
        start = now - RATE_WINDOW_S
        base = self._samples[0]
        for sample in self._samples:
            if sample.t > start:
                break
            base = sample
        return base

    def _projected(self, spend: float | None, left: int) -> float | None:
        """Spend so far plus the mean cost of a paid item times the items left (None until one was paid)."""
        if spend is None or not self.total:
            return None
        if not left:
            return spend
        if not self.paid_items:
            return None
        return round(spend + self.paid_items_usd / self.paid_items * left, 6)
