"""Each process's configured requests per minute as a hard cap: an ``aiolimiter.AsyncLimiter``.

The adaptive gate (``gate.py``) paces under it: its own buckets slow down after 429s, follow the
endpoint's headers and carry the debt that ``usage`` settles. None of that can raise the rate above
the ceiling, which never changes: whatever the gate decides, no 60-second window holds more requests
than ``--rpm``.

aiolimiter's bucket of ``max_rate`` draining ``max_rate`` per ``time_period`` admits at most
``max_rate * (1 + W / time_period)`` in any window of W seconds, so it is shaped to reach exactly the
RPM over a minute, with a burst of ``burst_seconds`` worth: its steady rate, 60/61 of the RPM for a
one-second burst, stays above the gate's own (59/60), so the ceiling binds only on what would break it.
aiolimiter keeps time on the event loop's clock: a gate on a test's virtual clock has none unless
given one.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

from vqa_distill.teacher.ratelimit.buckets import DEFAULT_BURST_SECONDS, WINDOW_SECONDS

ONE_REQUEST = 1.0  # aiolimiter refuses to acquire more than max_rate at once


def rpm_ceiling(rpm: float, burst_seconds: float = DEFAULT_BURST_SECONDS) -> AsyncLimiter:
    """Return a limiter that never admits more than ``rpm`` requests in any 60-second window."""
    max_rate = max(ONE_REQUEST, rpm * burst_seconds / (WINDOW_SECONDS + burst_seconds))
    if rpm <= max_rate:  # one request a minute, or less: one at a time, more than a minute apart
        return AsyncLimiter(ONE_REQUEST, WINDOW_SECONDS + burst_seconds)
    return AsyncLimiter(max_rate, max_rate * WINDOW_SECONDS / (rpm - max_rate))
