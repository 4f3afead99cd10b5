"""The server's record of every chat request it received, for tests and benchmarks to assert on."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_RECORDS = 200_000  # beyond this the oldest records are dropped (totals keep counting)


@dataclass(frozen=True)
class RequestRecord:
    """One chat completion request and what the server did with it."""

    t: float  # epoch seconds when the request arrived
    status: int  # HTTP status returned (499: the client hung up first)
    request_id: str
    model: str | None = None
    prompt_tokens: int = 0  # what the request carried, by its model's rule (also when refused)
    completion_tokens: int = 0
    fingerprints: tuple[str, ...] = ()
    image_sizes: tuple[str, ...] = ()
    user_text: str = ""
    fault: str | None = None  # the kind of the fault rule that fired
    rate_limited: str | None = None  # "requests" or "tokens": the RPM or TPM limit that refused it (429)
    counted_tokens: int = 0  # tokens counted against the TPM limit: prompt + requested output cap
    finish_reason: str | None = None
    duration_s: float = 0.0
    billed: bool = False  # an answer was computed and charged: a 200, or a hung-up client's with bill_hung_up
    # The model's time (all modes; the queue and the 503s are self-hosted mode's only):
    queue_wait_s: float = 0.0  # seconds waiting for a slot before service began
    service_started: float | None = None  # epoch seconds when service began; None: never served
    service_s: float = 0.0  # seconds in service (latency, injected timeouts), until the answer or the hang-up
    in_service: int = 0  # requests in service when this one began, itself included
    overloaded: bool = False  # refused with 503: K in service and Q waiting


@dataclass
class Stats:
    """Request records plus running totals; mutated from the event loop only."""

    records: list[RequestRecord] = field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    by_limit: Counter[str] = field(default_factory=Counter)  # 429s answered by the RPM / TPM limits
    overloaded: int = 0  # 503s answered because the self-hosted queue was full
    service_s: float = 0.0  # seconds all requests spent in service: busy slot-seconds, for utilisation
    queue_wait_s: float = 0.0  # seconds all requests spent waiting for a slot
    other_paths: Counter[str] = field(default_factory=Counter)  # non-chat endpoints, counted only

    def record(self, rec: RequestRecord) -> None:
        """Add one chat request to the records and totals."""
        self.records.append(rec)
        if len(self.records) > MAX_RECORDS:
            del self.records[: len(self.records) - MAX_RECORDS]
        self.requests += 1
        self.prompt_tokens += rec.prompt_tokens
        self.completion_tokens += rec.completion_tokens
        self.by_status[rec.status] += 1
        if rec.fault:
            self.by_fault[rec.fault] += 1
        if rec.rate_limited:
            self.by_limit[rec.rate_limited] += 1
        if rec.overloaded:
            self.overloaded += 1
        self.service_s += rec.service_s
        self.queue_wait_s += rec.queue_wait_s

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.records.clear()
        self.requests = self.prompt_tokens = self.completion_tokens = self.overloaded = 0
        self.service_s = self.queue_wait_s = 0.0
        self.by_status.clear()
        self.by_fault.clear()
        self.by_limit.clear()
        self.other_paths.clear()

    def snapshot(self) -> dict[str, Any]:
        """Return the records and totals as plain JSON-ready data."""
        return {
            # Records are appended when answered; listing them by arrival reads like the client's log.
            "requests": [asdict(r) for r in sorted(self.records, key=lambda r: r.t)],
            "totals": {
                "requests": self.requests,
                "ok": self.by_status.get(200, 0),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "by_fault": dict(sorted(self.by_fault.items())),
                "rate_limited": sum(self.by_limit.values()),
                "rate_limited_by": {kind: self.by_limit.get(kind, 0) for kind in ("requests", "tokens")},
                "overloaded": self.overloaded,
                "service_s": self.service_s,
                "queue_wait_s": self.queue_wait_s,
                "other_paths": dict(sorted(self.other_paths.items())),
            },
        }
