"""The last minute's tokens, request by request: the hard bound that no 60-second window exceeds the TPM.

The leaky bucket (``buckets.py``) paces: C + R*W in any window of W seconds, for amounts up to its
capacity C (one second of the limit). A request larger than C, such as a 1536^2 photo for gpt-4o-mini
(26,525 tokens against 3,333), goes whenever the bucket is empty, so the bound becomes A + R*W: at
200,000 TPM one 60-second window admitted 8 of them, 212,200 tokens. This log is exact whatever the
sizes: a request goes only when what was admitted in the last ``WINDOW_SPAN_S`` plus itself stays
within the limit, and it waits for the oldest amounts to leave it otherwise.

The span is a minute plus ``SEND_SLACK_S``: the endpoint counts a request when it arrives, and a
request admitted right after another left the window may arrive less than a minute after it when
the earlier one took longer on the way (a large image's upload). The slack costs nothing while the
bucket is what binds; only requests large enough for the window to bind wait it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from vqa_distill.teacher.ratelimit.buckets import WINDOW_SECONDS

SEND_SLACK_S = 1.0  # admission to arrival at the endpoint may differ by this much between two requests
WINDOW_SPAN_S = WINDOW_SECONDS + SEND_SLACK_S


@dataclass(slots=True)
class Entry:
    """One admitted request's amount (settled later by its ``usage``), while it is in the window."""

    time: float
    amount: float
    live: bool = True  # False once it has left the window


class SlidingWindow:
    """What was admitted in the last ``span`` seconds, against ``limit``."""

    def __init__(self, limit: float, span: float = WINDOW_SPAN_S):
        """Start empty."""
        self.limit = limit
        self.span = span
        self._entries: deque[Entry] = deque()
        self.total = 0.0

    def wait(self, amount: float, now: float) -> float:
        """Return the seconds until ``amount`` fits (an amount above the limit fits an empty window)."""
        self._expire(now)
        excess = self.total + amount - self.limit
        if excess <= 0 or not self._entries:
            return 0.0
        freed = 0.0
        for entry in self._entries:  # oldest first: the first to leave
            freed += entry.amount
            if freed >= excess:
                return max(0.0, entry.time + self.span - now)
        return max(0.0, self._entries[-1].time + self.span - now)

    def add(self, amount: float, now: float) -> Entry:
        """Admit ``amount`` now; return its entry, to settle it later."""
        self._expire(now)
        entry = Entry(now, amount)
        self._entries.append(entry)
        self.total += amount
        return entry

    def settle(self, entry: Entry, delta: float) -> None:
        """Correct an admitted amount by ``delta`` (what ``usage`` showed), if it is still in the window."""
        if not entry.live:
            return
        corrected = max(0.0, entry.amount + delta)
        self.total += corrected - entry.amount
        entry.amount = corrected

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0].time + self.span <= now:
            gone = self._entries.popleft()
            gone.live = False
            self.total -= gone.amount
        if not self._entries:
            self.total = 0.0  # no float residue once empty
