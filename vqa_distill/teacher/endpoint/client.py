"""Talk to the OpenAI-compatible teacher: one request, one endpoint check, and the error translation boundary.

Every ``openai`` exception is translated here, once, into the project's hierarchy:

- transient (retried by Prefect): 408, 409, 429, 5xx, timeouts, connection drops, a 200 that is not JSON
- permanent for one image (recorded, not retried): 400, 404/413/422 on a request, other 4xx
- fatal for the run (endpoint check only): 401/403 key refused, endpoint unreachable, model unknown

Each request follows its model's rules (``vqa_distill.teacher.endpoint.models``): the answer cap goes out as
the parameter the model accepts, ``temperature`` only where accepted, ``reasoning_effort`` only to
reasoning models; the rate gate hears every answer's rate-limit headers. The client is built with
``max_retries=0`` so Prefect owns every retry and each attempt is visible.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from vqa_distill.errors import (
    PermanentTeacherError,
    TeacherError,
    TransientTeacherError,
)
from vqa_distill.secrecy import mask
from vqa_distill.teacher.endpoint.models import ModelSpec, model_spec
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.endpoint.secrets import resolve_api_key
from vqa_distill.teacher.endpoint.tokens import text_tokens
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ratelimit.gate import Admission, RateGate
from vqa_distill.teacher.run_log import run_logger

TRANSIENT_STATUS_CODES = frozenset({408, 409, 429})
ROUTE_NOT_SERVED_STATUS_CODES = frozenset({404, 405, 501})  # the endpoint has no GET /models/{model}
MAX_ERROR_MESSAGE_CHARS = 500
REDACTED = "[REDACTED]"
MIN_KEY_CHARS = 4  # a shorter key (``x`` for a local server) guards nothing: masking it would garble every message

_WARNED: set[tuple[str, str]] = set()  # (what, model) already warned about in this process


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


def rules_for(model: str) -> ModelSpec:
    """Return the model's rules; warn once per process when the table does not know the model."""
    spec = model_spec(model)
    if not spec.known:
        _warn_once(
            "unknown model", model,
            "model %r is not in the model table: image tokens are estimated with the most expensive rule "
            "(%s) and parameters are sent as for chat models; see docs/models.md",
            model, spec.image_rule.describe(),
        )  # fmt: skip
    return spec


def estimate_tokens(request: TeacherRequest, image: PreparedImage, spec: ModelSpec | None = None) -> int:
    """Estimate the tokens a request counts against the TPM limit: prompt text + image + answer cap."""
    spec = spec or rules_for(request.model)
    image_cost = spec.image_tokens(image.width, image.height, request.params.get("detail", "auto"))
    text_cost = text_tokens(request.prompt) + text_tokens(request.system or "")
    return image_cost + text_cost + int(request.params.get("max_tokens") or 0)


def request_options(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the generation parameters to send, as ``spec``'s model accepts them (warning once per drop)."""
    options: dict[str, Any] = {}
    if params.get("max_tokens") is not None:
        options[spec.output_cap_parameter] = params["max_tokens"]
    if params.get("temperature") is not None:
        if spec.accepts_temperature:
            options["temperature"] = params["temperature"]
        else:
            _warn_once("temperature", spec.family, "%s does not accept temperature: sent without it", spec.family)
    wanted = params.get("reasoning_effort")
    if wanted is not None:
        effort = spec.effort_for(wanted)
        if effort is None:
            _warn_once(
                "reasoning_effort", spec.family,
                "%s takes no reasoning_effort (reasoning models only): sent without it", spec.family,
            )  # fmt: skip
        else:
            if effort != wanted:
                _warn_once(
                    "reasoning_effort", spec.family,
                    "%s takes no reasoning_effort %r: sent %r", spec.family, wanted, effort,
                )  # fmt: skip
            options["reasoning_effort"] = effort
    if params.get("response_format") is not None:  # structured outputs: question lists, judge scores
        options["response_format"] = params["response_format"]
    return options


def request_body(request: TeacherRequest, image: PreparedImage, spec: ModelSpec | None = None) -> dict[str, Any]:
    """Return the chat completion body of ``request``, model rules included: online and batch send the same."""
    return {
        "model": request.model,
        "messages": build_messages(request, image),
        **request_options(spec or rules_for(request.model), request.params),
    }


async def open_client(*, base_url: str | None, api_key_block: str | None, timeout: float) -> AsyncOpenAI:
    """Return a client of ``base_url`` with its key from the Secret block or ``OPENAI_API_KEY``."""
    api_key = await resolve_api_key(api_key_block)
    return make_client(base_url=base_url, api_key=api_key.get_secret_value(), timeout=timeout)


async def ask(
    client: AsyncOpenAI,
    gate: RateGate,
    request: TeacherRequest,
    image: PreparedImage,
    *,
    rules: ModelSpec | None = None,
) -> TeacherAnswer:
    """Send one request through the rate gate; return the answer or raise a TeacherError.

    ``rules`` replaces the table's rules for ``request.model`` (a benchmark compares rules with it).
    """
    spec = rules or rules_for(request.model)
    estimate = estimate_tokens(request, image, spec)
    admission = await gate.acquire(estimate)
    started = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(**request_body(request, image, spec))
    except Exception as exc:
        raise _failed(exc, client, gate, admission) from None
    gate.observe(raw.headers, admission)
    try:
        completion = raw.parse()
    except Exception as exc:
        raise translate_error(exc, api_key=client.api_key) from None
    latency = time.perf_counter() - started
    if not getattr(completion, "choices", None):
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


def _failed(exc: Exception, client: AsyncOpenAI, gate: RateGate, admission: Admission) -> TeacherError:
    """Translate a failed call, telling the gate what the endpoint said about its limits."""
    error = translate_error(exc, api_key=client.api_key)
    if isinstance(exc, openai.APIStatusError):
        gate.observe(exc.response.headers, admission)
    if error.status_code == 429:
        gate.throttled(error.retry_after, admission)
    return error


def translate_error(exc: BaseException, *, api_key: str | None = None) -> TeacherError:
    """Map an exception from the openai client to a TeacherError with a short, key-free message."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientTeacherError("the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientTeacherError(f"connection failed: {connection_reason(exc)}")
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
    """Return the delay ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date) asks for, in seconds.

    Garbage, negative or non-finite values are ignored (None); a date in the past is 0.
    """
    milliseconds = _finite_non_negative(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_non_negative(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" means UTC without saying where
        parsed = parsed.replace(tzinfo=UTC)
    return max(0.0, parsed.timestamp() - time.time())


def _finite_non_negative(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def redact(text: str, secret: str | None) -> str:
    """Remove the API key (and any echo of it) from a message before it is logged or stored."""
    return mask(text, secret, mark=REDACTED, min_chars=MIN_KEY_CHARS)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:MAX_ERROR_MESSAGE_CHARS]
    return (exc.message or exc.response.reason_phrase or "error")[:MAX_ERROR_MESSAGE_CHARS]


def error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code is not None else None


def _warn_once(what: str, model: str, message: str, *args: Any) -> None:
    """Log ``message`` as a warning the first time ``what`` happens for ``model`` in this process."""
    if (what, model) in _WARNED:
        return
    _WARNED.add((what, model))
    run_logger().warning(message, *args)


def connection_reason(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)
