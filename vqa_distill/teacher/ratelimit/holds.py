"""What holds every request of a run back on the endpoint's word: 429s, their pauses, the breaker, a stop.

- **Pace.** Each burst of 429s cuts the share of the limits the gate's buckets drain at by
  ``PACE_CUT`` (never below ``MIN_PACE``); it grows back by ``PACE_RECOVERY_PER_S`` each second.
  A 429 for a request sent before the last cut is old news: the pace was cut for it already.
- **Pauses.** A ``Retry-After`` holds every request that long (one log line per pause).
- **The breaker.** ``BREAKER_429S`` 429s in a row, with no answer between them, are no burst but a
  refusal that goes on: every request of the run pauses ``BREAKER_PAUSE_S`` (one line, with the time
  it resumes) instead of each task waiting and retrying on its own until its retries run out. Only
  429s of requests sent after the last trip count toward the next one.
- **A stop.** A fatal answer (the account's quota spent) stops the gate: the error is said once, and
  every request after it fails at once with it, none sent.

The gate (``gate.py``) asks this object when requests may go and what pace its buckets drain at.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.run_log import run_logger

PACE_CUT = 0.7  # a 429 multiplies the pace (share of the limits used) by this
MIN_PACE = 0.1  # ...but never below this share
PACE_RECOVERY_PER_S = 0.01  # share of the limits regained per second without a 429 (0.7 -> 1 in 30 s)
BREAKER_429S = 10  # 429s in a row with no answer between them trip the breaker
BREAKER_PAUSE_S = 30.0  # every request then waits this long (at most max_retry_after, so it waits, not fails)
LOG_PAUSE_MIN_S = 1.0  # shorter holds from the headers are pacing, not pauses worth a log line
RETRY_AFTER = "Retry-After"
BREAKER = "429s in a row"


class Holds:
    """The pace, pauses, breaker and stop of one gate (see the module docstring)."""

    def __init__(self, now: float, max_retry_after: float):
        """Start with no hold, at full pace."""
        self.max_retry_after = max_retry_after
        self.resume_at = now  # nobody is sent before this
        self.reason = RETRY_AFTER  # what set ``resume_at``
        self._pace_base = 1.0
        self._last_cut = float("-inf")  # when the pace was last cut
        self._sent_at_cut = -1.0  # requests sent by then: 429s for those belong to that cut
        self._logged_until = now
        self._streak = 0  # 429s since the last answer
        self._sent_at_trip = -1.0  # requests sent when the breaker last tripped: older 429s do not count
        self.stopped: FatalRunError | None = None

    def pace(self, now: float) -> float:
        """Return the share of the limits the buckets drain at now (1.0 until a 429)."""
        return min(1.0, self._pace_base + PACE_RECOVERY_PER_S * max(0.0, now - self._last_cut))

    def new_burst(self, sent_before: float | None) -> bool:
        """Return whether a 429 for a request sent after ``sent_before`` requests opens a new burst."""
        return sent_before is None or sent_before > self._sent_at_cut

    def cut_pace(self, now: float, sent_requests: float) -> None:
        """Cut the pace for a new burst of 429s (the buckets are drained at the old pace first, by the gate)."""
        self._pace_base = max(MIN_PACE, self.pace(now) * PACE_CUT)
        self._last_cut = now
        self._sent_at_cut = sent_requests
        run_logger().info("rate limit: 429 from the endpoint, pace lowered to %.0f %% of the limits", 100 * self._pace_base)

    def refused(self, now: float, sent_before: float | None, sent_requests: float) -> None:
        """Count a 429 toward the breaker; trip it at ``BREAKER_429S`` in a row."""
        if sent_before is not None and sent_before <= self._sent_at_trip:
            return  # sent before the last trip: part of what tripped it
        self._streak += 1
        if self._streak < BREAKER_429S:
            return
        self._streak = 0
        self._sent_at_trip = sent_requests
        seconds = min(BREAKER_PAUSE_S, self.max_retry_after)
        if seconds <= 0:
            return
        resume = (datetime.now().astimezone() + timedelta(seconds=seconds)).strftime("%H:%M:%S")
        run_logger().warning(
            "rate limit: %d 429s in a row with no answer between them: pausing every request of the run for %.0f s, "
            "until %s", BREAKER_429S, seconds, resume,
        )  # fmt: skip
        self._hold(now, seconds, BREAKER)

    def answered(self) -> None:
        """An answer came back: the 429s in a row are over."""
        self._streak = 0

    def pause(self, now: float, seconds: float) -> None:
        """Hold every request for ``seconds`` (the endpoint said so with Retry-After)."""
        resume_at = now + seconds
        if resume_at <= self.resume_at:
            return
        # One line per pause: a new one, or one pushed out by a second or more (a burst of 429s
        # asking for about the same wait is one pause).
        worth_a_line = self.resume_at <= now or resume_at - self.resume_at >= LOG_PAUSE_MIN_S
        if seconds > self.max_retry_after:
            run_logger().warning(
                "rate limit: the endpoint asks to wait %.0f s (Retry-After), longer than max_retry_after %g s: "
                "requests fail now and are retried per --max-retries instead of waiting",
                seconds, self.max_retry_after,
            )  # fmt: skip
        elif worth_a_line:
            run_logger().info("rate limit: pausing all requests for %.1f s (Retry-After)", seconds)
        self._hold(now, seconds, RETRY_AFTER)

    def say_hold(self, now: float, wait: float, reason: str) -> None:
        """Log a hold the endpoint imposes (its headers), once per hold of a second or more."""
        if wait >= LOG_PAUSE_MIN_S and now + wait > self._logged_until + LOG_PAUSE_MIN_S:
            self._logged_until = now + wait
            run_logger().info("rate limit: holding requests %.1f s (%s)", wait, reason)

    def stop(self, error: FatalRunError) -> None:
        """Stop every request for good with ``error``, said once (the first stop wins)."""
        if self.stopped is None:
            self.stopped = error
            run_logger().error("%s", error)

    def _hold(self, now: float, seconds: float, reason: str) -> None:
        self.resume_at = now + seconds
        self.reason = reason
        self._logged_until = max(self._logged_until, self.resume_at)
