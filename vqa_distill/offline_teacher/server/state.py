"""What the routes share: configuration, fault rules, rate limits, capacity, stats and the decode thread pool."""

from __future__ import annotations

import dataclasses
import hmac
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse

from vqa_distill.offline_teacher.rules.billing import ImageRule, image_rule
from vqa_distill.offline_teacher.rules.limits import RateLimiter
from vqa_distill.offline_teacher.rules.schema import model_not_found, served_model_missing
from vqa_distill.offline_teacher.rules.vendor_images import QWEN_SELF_HOSTED
from vqa_distill.offline_teacher.server.capacity import Capacity
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
    capacity: Capacity
    stats: Stats = field(default_factory=Stats)
    latency_s: float = 0.0
    jitter_s: float = 0.0
    latency_per_active_s: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> TeacherState:
        """Build the state a fresh server starts with."""
        return cls(
            config=config,
            injector=FaultInjector(config.faults, seed=config.seed),
            limiter=RateLimiter(rpm=config.rpm, tpm=config.tpm),
            capacity=Capacity(config.concurrency, config.queue_size),
            latency_s=config.latency_s,
            jitter_s=config.jitter_s,
            latency_per_active_s=config.latency_per_active_s,
            rng=random.Random(config.seed),
        )

    def reset(self) -> None:
        """Clear the stats and fault counts; restore the configured limits (buckets full) and capacity."""
        self.stats.clear()
        self.injector.reset()
        self.limiter.configure(self.config.rpm, self.config.tpm)
        self.capacity.configure(self.config.concurrency, self.config.queue_size)
        self.capacity.clear_counts()
        self.latency_per_active_s = self.config.latency_per_active_s

    def authorized(self, request: Request) -> bool:
        """Return whether the request carries the expected key (any key when none is expected)."""
        expected = self.config.api_key
        if expected is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.get_secret_value().encode()
        )

    def serves(self, model: str) -> bool:
        """Return whether ``model`` is one of the served names."""
        return model in self.config.served_models

    def model_missing(self, model: str) -> JSONResponse:
        """Return the 404 for a model this server does not serve, worded as the mode's real servers word it."""
        return served_model_missing(model) if self.config.self_hosted else model_not_found(model)

    def image_rule(self, model: str) -> ImageRule:
        """Return the image rule ``model`` is billed by here: its alias's, and a self-hosted pixel budget."""
        rule = image_rule(self.config.bill_as.get(model, model))
        if rule == QWEN_SELF_HOSTED and self.config.qwen_max_pixels is not None:
            rule = dataclasses.replace(QWEN_SELF_HOSTED, max_pixels=self.config.qwen_max_pixels)
        return rule

    def delay(self, in_service: int = 1) -> float:
        """Return this request's simulated model latency in seconds, with ``in_service`` requests being served."""
        jitter = self.rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0
        return self.latency_s + jitter + self.latency_per_active_s * max(0, in_service - 1)


def get_state(request: Request) -> TeacherState:
    """Return the shared state of the app serving ``request``."""
    state: TeacherState = request.app.state.teacher
    return state


def request_id(request: Request) -> str:
    """Return the id the middleware gave ``request``."""
    return str(request.scope.get(REQUEST_ID_HEADER, ""))
