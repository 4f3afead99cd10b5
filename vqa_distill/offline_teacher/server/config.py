"""Settings of the offline teacher server, validated once at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from vqa_distill.offline_teacher.server.faults import FaultRule
from vqa_distill.paths import DEFAULT_TEACHER_PORT as DEFAULT_PORT

LISTEN_BACKLOG = 2048  # pending connections the kernel queues: bursts of hundreds must not be refused
DEFAULT_HOST = "127.0.0.1"  # loopback: the admin endpoints must not be reachable from elsewhere by accident

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


class ServerConfig(BaseModel):
    """Everything that shapes the server's behaviour; the API key stays a ``SecretStr`` end to end."""

    model_config = ConfigDict(extra="forbid")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    api_key: SecretStr | None = None  # None: accept any key (or none)
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)
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
