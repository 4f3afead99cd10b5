"""A self-hosted model server's capacity: K requests in service at once, Q more waiting, the rest refused.

vLLM and SGLang run a bounded batch on the GPU (``--max-num-seqs``); requests beyond it wait in the
scheduler's queue, first come first served, so a queued request's latency is its wait plus its own
service time. What the queue cannot hold is refused with 503, as the server or the proxy in front of
it does (``queue_size=None``: nothing is refused, and clients time out instead).
Used from the event loop only: every check and change of the counts happens without an ``await``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field


class Overloaded(Exception):
    """Raised by ``admit`` when K requests are in service and Q wait: the request is refused (503)."""

    def __init__(self, in_service: int, queued: int) -> None:
        super().__init__(
            f"The server is overloaded: {in_service} requests in service and {queued} waiting. "
            "Try again later."
        )
        self.message = str(self)


@dataclass
class Capacity:
    """The slots of one server, its waiting line in arrival order, and counts for the admin view."""

    concurrency: int  # K: requests in service at once
    queue_size: int | None  # Q: requests that may wait for a slot; None: unbounded
    in_service: int = 0
    peak_in_service: int = 0
    peak_queued: int = 0
    overloaded: int = 0  # requests refused because the line was full
    _waiting: deque[asyncio.Future[int]] = field(default_factory=deque)

    @property
    def queued(self) -> int:
        """Return how many requests wait for a slot now."""
        return len(self._waiting)

    def admit(self) -> asyncio.Future[int]:
        """Join the line: the future resolves to the requests in service (itself included) once it has a slot.

        Already resolved when a slot is free and nobody waits; raises ``Overloaded`` when the line is full.
        """
        ticket: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._waiting and self.in_service < self.concurrency:
            ticket.set_result(self._take())
            return ticket
        if self.queue_size is not None and len(self._waiting) >= self.queue_size:
            self.overloaded += 1
            raise Overloaded(self.in_service, len(self._waiting))
        self._waiting.append(ticket)
        self.peak_queued = max(self.peak_queued, len(self._waiting))
        return ticket

    def abandon(self, ticket: asyncio.Future[int]) -> None:
        """Forget a ticket whose client gave up: leave the line, or free the slot it had just been given."""
        if ticket.done() and not ticket.cancelled():
            self.release()
            return
        ticket.cancel()
        with contextlib.suppress(ValueError):  # already taken off the line
            self._waiting.remove(ticket)

    def release(self) -> None:
        """Free one slot and hand it to the longest-waiting request."""
        self.in_service = max(0, self.in_service - 1)
        self._grant()

    def configure(self, concurrency: int, queue_size: int | None) -> None:
        """Change K and Q; more slots go to those waiting at once (nobody in service or waiting is dropped)."""
        self.concurrency, self.queue_size = concurrency, queue_size
        self._grant()

    def clear_counts(self) -> None:
        """Restart the peaks and the overload count (requests in service and waiting stay)."""
        self.peak_in_service, self.peak_queued, self.overloaded = self.in_service, self.queued, 0

    def snapshot(self) -> dict[str, int | None]:
        """Return K, Q and the counts, for the admin view."""
        return {
            "concurrency": self.concurrency,
            "queue_size": self.queue_size,
            "in_service": self.in_service,
            "queued": self.queued,
            "peak_in_service": self.peak_in_service,
            "peak_queued": self.peak_queued,
            "overloaded": self.overloaded,
        }

    def _take(self) -> int:
        self.in_service += 1
        self.peak_in_service = max(self.peak_in_service, self.in_service)
        return self.in_service

    def _grant(self) -> None:
        while self._waiting and self.in_service < self.concurrency:
            ticket = self._waiting.popleft()
            if not ticket.done():  # a cancelled ticket's client is gone
                ticket.set_result(self._take())
