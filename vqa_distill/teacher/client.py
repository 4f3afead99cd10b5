"""Talk to the OpenAI-compatible teacher: one request, one preflight, and the error translation boundary.

Every ``openai`` exception is translated here, once, into the project's hierarchy:

- transient (retried by Prefect): 408, 409, 429, 5xx, timeouts, connection drops, a 200 that is not JSON
- permanent for one image (recorded, not retried): 400, 404/413/422 on a request, other 4xx
- fatal for the run (preflight only): 401/403 key refused, endpoint unreachable, model unknown

The client is built with ``max_retries=0`` so Prefect owns every retry and each attempt is visible.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from vqa_distill.errors import (
    PermanentTeacherError,
    TeacherAuthError,
    TeacherError,
    TeacherModelError,
    TeacherUnreachableError,
    TransientTeacherError,
)
from vqa_distill.teacher.gate import RateGate
from vqa_distill.teacher.imaging import PreparedImage
from vqa_distill.teacher.request import TeacherRequest
from vqa_distill.teacher.tokens import image_tokens, text_tokens

TRANSIENT_STATUS_CODES = frozenset({408, 409, 429})
MAX_ERROR_MESSAGE_CHARS = 500
PREFLIGHT_PROMPT = "Reply with OK."
REDACTED = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class TeacherAnswer:
    """What the teacher said and what it cost."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float


def make_client(*, base_url: str | None, api_key: str, timeout: float) -> AsyncOpenAI:
    """Build the run's client: no SDK retries (Prefect retries), the run's timeout, the aiohttp transport.

    aiohttp, not the default httpx pool: httpcore's pool scans every connection for every request
    (quadratic in requests in flight), which at 100+ in flight cost more CPU than everything else
    in the flow (bench/teacher.py). Call inside the event loop that will use the client.
    """
    return AsyncOpenAI(
        api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout, http_client=DefaultAioHttpClient()
    )


def build_messages(request: TeacherRequest, image: PreparedImage) -> list[dict[str, Any]]:
    """Return the chat messages: optional system prompt, then the image and the prompt in one user turn."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    detail = request.params.get("detail", "auto")
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image.data_url, "detail": detail}},
                {"type": "text", "text": request.prompt},
            ],
        }
    )
    return messages


def estimate_tokens(request: TeacherRequest, image: PreparedImage) -> int:
    """Estimate the tokens a request counts against the TPM limit: input text + image + answer cap."""
    detail = request.params.get("detail", "auto")
    image_cost = image_tokens(image.width, image.height, "low" if detail == "low" else "high")
    text_cost = text_tokens(request.prompt) + text_tokens(request.system or "")
    return image_cost + text_cost + int(request.params.get("max_tokens") or 0)


async def ask(client: AsyncOpenAI, gate: RateGate, request: TeacherRequest, image: PreparedImage) -> TeacherAnswer:
    """Send one request through the rate gate; return the answer or raise a TeacherError."""
    estimate = estimate_tokens(request, image)
    await gate.acquire(estimate)
    sampling = {k: v for k, v in request.params.items() if k in {"temperature", "max_tokens"}}
    started = time.perf_counter()
    try:
        completion = await client.chat.completions.create(
            model=request.model,
            messages=build_messages(request, image),  # type: ignore[arg-type]
            **sampling,
        )
    except Exception as exc:
        error = translate_error(exc, api_key=client.api_key)
        if error.status_code == 429 and error.retry_after:
            gate.pause(error.retry_after)
        raise error from None
    latency = time.perf_counter() - started
    if not hasattr(completion, "choices") or not completion.choices:
        raise TransientTeacherError("the endpoint answered 200 without choices (malformed response)")
    choice = completion.choices[0]
    usage = completion.usage
    if usage is not None:
        await gate.settle(estimate, usage.total_tokens)
    return TeacherAnswer(
        text=(choice.message.content or "") if choice.message else "",
        finish_reason=choice.finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        latency_s=latency,
    )


async def preflight(client: AsyncOpenAI, model: str) -> None:
    """Make one tiny text-only call; raise a FatalRunError that says whether key, endpoint or model is wrong."""
    try:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PREFLIGHT_PROMPT}], max_tokens=1
        )
    except openai.AuthenticationError as exc:
        raise TeacherAuthError(
            f"the endpoint {client.base_url} refused the API key (HTTP {exc.status_code}): "
            "check OPENAI_API_KEY or the Secret block"
        ) from None
    except openai.PermissionDeniedError as exc:
        raise TeacherAuthError(
            f"the API key may not use model {model!r} at {client.base_url} (HTTP {exc.status_code})"
        ) from None
    except openai.NotFoundError:
        raise TeacherModelError(f"the endpoint {client.base_url} does not serve model {model!r} (HTTP 404)") from None
    except openai.APIConnectionError as exc:
        raise TeacherUnreachableError(
            f"cannot reach the endpoint {client.base_url}: {_connection_reason(exc)}"
        ) from None
    except Exception as exc:
        error = translate_error(exc, api_key=client.api_key)
        if isinstance(error, PermanentTeacherError):
            raise TeacherModelError(f"the endpoint rejected a test call for model {model!r}: {error}") from None
        # A transient error at preflight (429, 5xx) says the endpoint and key work: go on.


def translate_error(exc: BaseException, *, api_key: str | None = None) -> TeacherError:
    """Map an exception from the openai client to a TeacherError with a short, key-free message."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientTeacherError("the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientTeacherError(f"connection failed: {_connection_reason(exc)}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = redact(f"HTTP {status}: {_api_message(exc)}", api_key)
        retry_after = parse_retry_after(exc.response.headers)
        if status in TRANSIENT_STATUS_CODES or status >= 500:
            return TransientTeacherError(message, status_code=status, retry_after=retry_after)
        return PermanentTeacherError(message, status_code=status)
    if isinstance(exc, ValueError | openai.APIResponseValidationError):  # JSONDecodeError is a ValueError
        return TransientTeacherError(f"the endpoint's response was not valid JSON ({type(exc).__name__})")
    return PermanentTeacherError(redact(f"{type(exc).__name__}: {exc}", api_key))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the delay a Retry-After(-ms) header asks for, in seconds, or None."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if name == "retry-after" else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


def redact(text: str, secret: str | None) -> str:
    """Remove the secret (and any echo of it) from a message before it is logged or stored."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, REDACTED)
    return text


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:MAX_ERROR_MESSAGE_CHARS]
    return (exc.message or exc.response.reason_phrase or "error")[:MAX_ERROR_MESSAGE_CHARS]


def _connection_reason(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)
