"""Request and response shapes of the offline teacher, and OpenAI-style error bodies.

Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` shape, so the real ``openai``
client raises its real exception classes with the real ``.code`` and ``.body``.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse

SYSTEM_FINGERPRINT = "fp_vqa_distill_offline"
OWNED_BY = "vqa-distill"
MODEL_CREATED_EPOCH_S = 1_700_000_000  # a fixed date (Nov 2023), so model listings never change


# ----------------------------------------------------------------------------- requests


class ImageURL(BaseModel):
    """The ``image_url`` object of an image part."""

    model_config = ConfigDict(extra="allow")
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class TextPart(BaseModel):
    """A text content part."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    """An image content part."""

    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """The parts of a chat completion request this server reads; other parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    reasoning_effort: str | None = None
    stream: bool | None = False
    n: int | None = Field(default=1, ge=1, le=1)

    @property
    def output_cap(self) -> int | None:
        """Return the requested cap on output tokens, whichever parameter carries it."""
        return self.max_completion_tokens or self.max_tokens


class LatencySettings(BaseModel):
    """Body of ``PUT /_admin/latency``."""

    model_config = ConfigDict(extra="forbid")
    latency_s: float = Field(ge=0)
    jitter_s: float = Field(default=0.0, ge=0)


class BillingSettings(BaseModel):
    """Body of ``PUT /_admin/billing``."""

    model_config = ConfigDict(extra="forbid")
    bill_hung_up: bool


class LimitSettings(BaseModel):
    """Body of ``PUT /_admin/limits``: requests and tokens per minute, ``None`` for unlimited."""

    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class CapacitySettings(BaseModel):
    """Body of ``PUT /_admin/capacity`` (self-hosted mode): K in service, Q waiting, service-time growth."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(ge=1)
    queue_size: int | None = Field(ge=0)  # None: unbounded (clients time out instead of a 503)
    latency_per_active_s: float = Field(default=0.0, ge=0)


# ----------------------------------------------------------------------------- responses


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Return an error response in OpenAI's ``{"error": {...}}`` shape."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    """Return the 401 for a missing or wrong key; the key given is never echoed back."""
    return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")


def model_not_found(model: str) -> JSONResponse:
    """Return OpenAI's 404 for a model this server does not serve."""
    message = f"The model '{model}' does not exist or you do not have access to it."
    return openai_error(404, message, code="model_not_found")


def served_model_missing(model: str) -> JSONResponse:
    """Return vLLM's 404 for a model it does not serve: its ``code`` is the status, not ``model_not_found``."""
    body = {
        "error": {
            "message": f"The model `{model}` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    return JSONResponse(body, status_code=404)


def model_object(model: str) -> dict[str, Any]:
    """Return one entry of the models list, as ``GET /v1/models/{model}`` also returns it."""
    return {"id": model, "object": "model", "created": MODEL_CREATED_EPOCH_S, "owned_by": OWNED_BY}


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """Return ``(message, param)`` describing the first problem pydantic found in a request body."""
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ())) or None
    return f"Invalid request: {param or 'body'}: {first.get('msg', 'invalid value')}.", param


def completion_body(
    model: str, content: str | None, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """Return a ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
