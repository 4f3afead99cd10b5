"""One chat request in flight: its record, its turn with the model, and the one way it ends.

Every answer goes through ``Exchange.done``, which records the request (whatever its outcome), frees
its slot and adds the rate-limit headers the mode sends. ``wait_for_model`` is the self-hosted mode's
line: K requests in service, Q waiting in arrival order (their latency grows by the wait), 503 beyond
(server/capacity.py); in the other modes it starts service at once. A client that hangs up while it
waits or is served is noticed within ``DISCONNECT_POLL_S``, and its slot goes to the next in line, as a
real server aborts a request whose connection closed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vqa_distill.offline_teacher.rules.schema import openai_error
from vqa_distill.offline_teacher.server.capacity import Overloaded
from vqa_distill.offline_teacher.server.state import TeacherState
from vqa_distill.offline_teacher.server.stats import RequestRecord

DISCONNECT_POLL_S = (
    0.1  # how often a request waiting for or held by the model checks whether the client gave up
)
STATUS_CLIENT_CLOSED = 499  # recorded (never sent) when the client hung up before the answer


async def wait_or_disconnect(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; return True early if the client hung up meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(DISCONNECT_POLL_S, left))
        if await request.is_disconnected():
            return True
    return False


@dataclass
class Exchange:
    """One chat request in flight: what is known about it so far, and how to finish it."""

    state: TeacherState
    rec: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    served_model: str | None = None  # set once the model is known to be served: rate-limit headers then
    service_from: float | None = None  # monotonic seconds when service began
    holds_slot: bool = False  # a self-hosted slot to give back when the request ends

    async def wait_for_model(self, request: Request) -> Response | None:
        """Begin service: None once in service, else the answer already recorded (503 line full, 499 gone)."""
        capacity = self.state.capacity
        if not self.state.config.self_hosted:
            self._begin_service(in_service=0)
            return None
        arrived = time.monotonic()
        try:
            ticket = capacity.admit()
        except Overloaded as exc:
            return self.done(openai_error(503, exc.message, type_="server_error"), overloaded=True)
        while not ticket.done():
            await asyncio.wait({ticket}, timeout=DISCONNECT_POLL_S)
            if not ticket.done() and await request.is_disconnected():
                capacity.abandon(ticket)  # frees the slot too if it was granted meanwhile
                self.rec["queue_wait_s"] = time.monotonic() - arrived
                return self.done(Response(status_code=STATUS_CLIENT_CLOSED))
        self.rec["queue_wait_s"] = time.monotonic() - arrived
        self.holds_slot = True
        self._begin_service(in_service=ticket.result())
        return None

    def delay(self) -> float:
        """Return this request's service time: the latency settings, grown by those served beside it."""
        return self.state.delay(self.rec.get("in_service", 0))

    def end_service(self) -> None:
        """Record the time in service and give the slot back (once; safe to call again)."""
        if self.service_from is not None and "service_s" not in self.rec:
            self.rec["service_s"] = time.monotonic() - self.service_from
        if self.holds_slot:
            self.holds_slot = False
            self.state.capacity.release()

    def done(self, response: Response, **fields: Any) -> Response:
        """Record the request with ``fields`` and return ``response`` with any rate-limit headers."""
        self.rec.update(fields)
        self.end_service()
        config = self.state.config
        if self.served_model is not None and self.state.limiter.enabled and config.sends_ratelimit_headers:
            response.headers.update(self.state.limiter.headers(self.served_model))
        duration_s = time.monotonic() - self.started
        self.state.stats.record(RequestRecord(status=response.status_code, duration_s=duration_s, **self.rec))
        return response

    def _begin_service(self, in_service: int) -> None:
        self.service_from = time.monotonic()
        self.rec["service_started"] = time.time()
        self.rec["in_service"] = in_service
