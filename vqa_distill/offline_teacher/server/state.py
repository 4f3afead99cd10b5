"""What the routes share: configuration, fault rules, rate limits, stats and the decode thread pool."""

from __future__ import annotations

import hmac
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from starlette.requests import Request

from vqa_distill.offline_teacher.rules.limits import RateLimiter
from vqa_distill.offline_teacher.server.config import ServerConfig
from vqa_distill.offline_teacher.server.faults import FaultInjector
from vqa_distill.offline_teacher.server.stats import Stats

REQUEST_ID_HEADER = "x-request-id"


@dataclass
class TeacherState:
    """Everything the routes share; touched from the event loop only (decoding threads get plain data)."""

    config: ServerConfig
    injector: FaultInjector
    limiter: RateLimiter
    stats: Stats = field(default_factory=Stats)
    latency_s: float = 0.0
    jitter_s: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> TeacherState:
        """Build the state a fresh server starts with."""
        return cls(
            config=config,
            injector=FaultInjector(config.faults, seed=config.seed),
            limiter=RateLimiter(rpm=config.rpm, tpm=config.tpm),
            latency_s=config.latency_s,
            jitter_s=config.jitter_s,
            rng=random.Random(config.seed),
        )

    def reset(self) -> None:
        """Clear the stats and fault counts, and restore the configured limits with full buckets."""
        self.stats.clear()
        self.injector.reset()
        self.limiter.configure(self.config.rpm, self.config.tpm)

    def authorized(self, request: Request) -> bool:
        """Return whether the request carries the expected key (any key when none is expected)."""
        expected = self.config.api_key
        if expected is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.get_secret_value().encode()
        )

    def delay(self) -> float:
        """Return this request's simulated model latency in seconds."""
        jitter = self.rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0
        return self.latency_s + jitter


def get_state(request: Request) -> TeacherState:
    """Return the shared state of the app serving ``request``."""
    state: TeacherState = request.app.state.teacher
    return state


def request_id(request: Request) -> str:
    """Return the id the middleware gave ``request``."""
    return str(request.scope.get(REQUEST_ID_HEADER, ""))
