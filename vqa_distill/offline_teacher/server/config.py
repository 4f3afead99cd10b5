"""Settings of the offline teacher server, validated once at start-up.

Three modes, one request pipeline (routes/chat.py); the mode decides only what the server around it
looks like:

- ``openai`` (default): OpenAI's API. OpenAI's model names, ``GET /v1/models/{id}`` with 404
  ``model_not_found``, ``x-ratelimit-*`` headers and 429s with ``Retry-After`` when ``rpm``/``tpm`` are set.
- ``relay``: a gateway in front of other vendors (DashScope's, Google's or Anthropic's OpenAI-compatible
  endpoints, or a proxy before them). Their names (``RELAY_MODELS``), each billed by its family's rule;
  no ``GET /v1/models/{id}`` (a plain 404 without ``model_not_found``) and no ``x-ratelimit-*`` headers
  unless asked; ``rpm``/``tpm`` still answer 429.
- ``self-hosted``: vLLM or SGLang on one's own GPU. ``GET /v1/models`` but no ``/v1/models/{id}``, no
  rate-limit headers and never a 429: ``concurrency`` requests in service at once, ``queue_size`` more
  waiting their turn (latency grows with the queue), 503 beyond that.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from vqa_distill.offline_teacher.rules.vendor_images import HF_QWEN_MIN_PIXELS
from vqa_distill.offline_teacher.server.faults import FaultRule
from vqa_distill.paths import DEFAULT_TEACHER_PORT as DEFAULT_PORT

LISTEN_BACKLOG = 2048  # pending connections the kernel queues: bursts of hundreds must not be refused
DEFAULT_HOST = "127.0.0.1"  # loopback: the admin endpoints must not be reachable from elsewhere by accident

Mode = Literal["openai", "relay", "self-hosted"]
MODES: tuple[Mode, ...] = ("openai", "relay", "self-hosted")

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o4-mini",
    "teacher-offline",
)
RELAY_MODELS = (  # as DashScope, Google and Anthropic name them on their OpenAI-compatible endpoints
    "qwen-vl-max",
    "qwen-vl-plus",
    "qwen2.5-vl-72b-instruct",
    "gemini-2.0-flash",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "claude-3-5-sonnet-20241022",
    "claude-sonnet-4-20250514",
    "claude-3-haiku-20240307",
    "glm-4v",
    "glm-4v-plus",
)
SELF_HOSTED_MODELS = ("Qwen/Qwen2.5-VL-72B-Instruct", "OpenGVLab/InternVL2_5-78B")  # as vLLM names them
MODELS_BY_MODE: dict[Mode, tuple[str, ...]] = {
    "openai": DEFAULT_MODELS,
    "relay": RELAY_MODELS,
    "self-hosted": SELF_HOSTED_MODELS,
}

# A small GPU server: vLLM's own --max-num-seqs default is far higher, but GPU memory for images'
# tokens caps the batch long before it; the queue is what a proxy in front of it would hold.
SELF_HOSTED_CONCURRENCY = 16  # requests in service at once (K)
SELF_HOSTED_QUEUE = 64  # requests waiting for a slot (Q); more are refused with 503


class ServerConfig(BaseModel):
    """Everything that shapes the server's behaviour; the API key stays a ``SecretStr`` end to end."""

    model_config = ConfigDict(extra="forbid")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    api_key: SecretStr | None = None  # None: accept any key (or none)
    mode: Mode = "openai"
    models: list[str] | None = Field(default=None, min_length=1)  # None: the mode's list (MODELS_BY_MODE)
    latency_s: float = Field(default=0.0, ge=0)  # added to every request that reaches the "model"
    jitter_s: float = Field(default=0.0, ge=0)  # plus uniform(0, jitter_s), from the seeded RNG
    seed: int = 0  # seeds jitter and fault probabilities
    faults: list[FaultRule] = Field(default_factory=list)
    rpm: int | None = Field(default=None, ge=1)  # requests per minute per model; None: unlimited
    tpm: int | None = Field(default=None, ge=1)  # tokens per minute per model; None: unlimited
    access_log: bool = False  # off by default: uvicorn's access log costs throughput
    # A real API bills an answer its model computed even when the client hung up meanwhile (a worker
    # killed mid-request): on, such a request is answered and billed (recorded 499, ``billed``).
    bill_hung_up: bool = False
    # What the endpoint shows of itself; None: as the mode's real servers do (on in openai mode only).
    model_lookup: bool | None = None  # GET /v1/models/{id}; off: a plain 404, no model_not_found
    ratelimit_headers: bool | None = None  # x-ratelimit-{limit,remaining,reset}-* on every answer
    retry_after: bool = True  # Retry-After and retry-after-ms on the rpm/tpm 429s
    # Aliases, served besides the models and billed as another model ("my-teacher" -> "qwen-vl-max").
    bill_as: dict[str, str] = Field(default_factory=dict)
    # Self-hosted Qwen2.5-VL's max_pixels as its server was started with; None: the processor's 12,845,056.
    qwen_max_pixels: int | None = Field(default=None, ge=HF_QWEN_MIN_PIXELS)
    # Self-hosted mode only: K in service, Q waiting (None: unbounded, so clients time out instead of 503).
    concurrency: int = Field(default=SELF_HOSTED_CONCURRENCY, ge=1)
    queue_size: int | None = Field(default=SELF_HOSTED_QUEUE, ge=0)
    # Service time grows with the batch: + this many seconds per other request in service (GPU batching).
    latency_per_active_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _self_hosted_has_no_rate_limits(self) -> ServerConfig:
        if self.mode == "self-hosted" and (self.rpm is not None or self.tpm is not None):
            raise ValueError(
                "a self-hosted server has no rate limits and never answers 429: "
                "set concurrency and queue_size instead of rpm/tpm"
            )
        return self

    @property
    def served_models(self) -> list[str]:
        """Return the model names served: the configured list (else the mode's), then any alias not in it."""
        names = list(self.models) if self.models is not None else list(MODELS_BY_MODE[self.mode])
        return names + [alias for alias in self.bill_as if alias not in names]

    @property
    def serves_model_lookup(self) -> bool:
        """Return whether ``GET /v1/models/{id}`` exists."""
        return self.model_lookup if self.model_lookup is not None else self.mode == "openai"

    @property
    def sends_ratelimit_headers(self) -> bool:
        """Return whether answers carry ``x-ratelimit-*`` headers (when limits are set)."""
        return self.ratelimit_headers if self.ratelimit_headers is not None else self.mode == "openai"

    @property
    def self_hosted(self) -> bool:
        """Return whether requests go through the K-in-service, Q-waiting capacity."""
        return self.mode == "self-hosted"
