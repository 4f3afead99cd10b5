"""Ask the OpenAI-compatible teacher: the run's client, and one request through the rate gate.

The client is built with ``max_retries=0`` so Prefect owns every retry and each attempt is visible.
Every request passes the rate gate with its estimate; the gate hears every answer's rate-limit headers
and 429s, and each answer's ``usage`` settles the estimate both ways. Every request also holds a slot of
the gate's concurrency limit while in flight, and tells it its latency or that the endpoint was
overloaded (a 503 without Retry-After, a timeout). An endpoint that has answered without rate-limit
headers (a self-hosted server) is overloaded, not refusing: its overload answers are waited out and asked again
here, under the lowered limit, up to ``MAX_OVERLOAD_RETRIES`` times, so they spend none of the image's
retries. Nothing was answered, so nothing is paid twice: the request's tokens go back to the gate. What a request says is built in
``body.py``, and every failure is translated once, in ``failures.py``; their names are re-exported here,
the package's public face.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from vqa_distill.errors import FatalRunError, TeacherError, TransientTeacherError
from vqa_distill.teacher.endpoint.body import (
    build_messages,
    counted_tokens,
    estimate_tokens,
    prompt_text_tokens,
    request_body,
    request_options,
    ruled_image_tokens,
    rules_for,
)
from vqa_distill.teacher.endpoint.failures import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_OVERLOAD_RETRIES,
    TRANSIENT_STATUS_CODES,
    connection_reason,
    error_code,
    overload_backoff,
    overloaded,
    parse_retry_after,
    quota_error,
    quota_spent,
    redact,
    translate_error,
)
from vqa_distill.teacher.endpoint.models import ModelSpec
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.endpoint.secrets import resolve_api_key
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ratelimit.gate import Admission, RateGate
from vqa_distill.teacher.ratelimit.gates import Gates

__all__ = [
    "MAX_ERROR_MESSAGE_CHARS",
    "TRANSIENT_STATUS_CODES",
    "TeacherAnswer",
    "ask",
    "build_messages",
    "connection_reason",
    "error_code",
    "estimate_tokens",
    "make_client",
    "open_client",
    "parse_retry_after",
    "redact",
    "request_body",
    "request_options",
    "rules_for",
    "translate_error",
]


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


async def open_client(*, base_url: str | None, api_key_block: str | None, timeout: float) -> AsyncOpenAI:
    """Return a client of ``base_url`` with its key from the Secret block or ``OPENAI_API_KEY``."""
    api_key = await resolve_api_key(api_key_block)
    return make_client(base_url=base_url, api_key=api_key.get_secret_value(), timeout=timeout)


async def ask(
    client: AsyncOpenAI,
    gates: RateGate | Gates,
    request: TeacherRequest,
    image: PreparedImage,
    *,
    rules: ModelSpec | None = None,
) -> TeacherAnswer:
    """Send one request through its model's rate gate; return the answer or raise a TeacherError
    (a FatalRunError once the account's quota is spent).

    ``gates`` is one gate, or the run's gates by model (the judge's requests pass the judge's).
    ``rules`` replaces the table's rules for ``request.model`` (a benchmark compares rules with it).
    """
    gate = gates.for_model(request.model) if isinstance(gates, Gates) else gates
    spec = rules or rules_for(request.model)
    calibration = gate.calibration(request.model, trusted=spec.known)
    estimate = estimate_tokens(request, image, spec, calibration)
    for overloads in range(MAX_OVERLOAD_RETRIES + 1):
        async with gate.concurrency.slot() as slot:
            admission = await gate.acquire(estimate)
            started = time.perf_counter()
            try:
                raw = await client.chat.completions.with_raw_response.create(**request_body(request, image, spec))
            except Exception as exc:
                if not overloaded(exc):
                    raise _failed(exc, client, gate, admission) from None
                slot.done(overloaded=True)
                if not gate.answers_without_headers or overloads == MAX_OVERLOAD_RETRIES:
                    raise _failed(exc, client, gate, admission) from None
                await gate.settle(estimate, 0, admission)  # not answered: nothing was used, its tokens go back
            else:
                slot.done(time.perf_counter() - started)
                break
        await asyncio.sleep(overload_backoff(overloads))  # outside the slot: the lowered limit holds the others
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
    if usage is None or usage.prompt_tokens is None:
        await gate.settle(estimate, None, admission)  # an answer all the same: the 429s in a row are over
    else:
        counted = counted_tokens(request, usage.prompt_tokens, usage.completion_tokens or 0)
        await gate.settle(estimate, counted, admission)
        calibration.learn(
            image.width, image.height, prompt_tokens=usage.prompt_tokens, text_tokens=prompt_text_tokens(request),
            ruled_tokens=ruled_image_tokens(request, image, spec),
        )  # fmt: skip
    return TeacherAnswer(
        text=(choice.message.content or "") if choice.message else "",
        finish_reason=choice.finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        latency_s=latency,
    )


def _failed(exc: Exception, client: AsyncOpenAI, gate: RateGate, admission: Admission) -> TeacherError | FatalRunError:
    """Translate a failed call, telling the gate what the endpoint said about its limits.

    A spent quota stops the gate: no retry and no other image can succeed, so the run says so once
    and sends nothing more.
    """
    if quota_spent(exc):
        stop = quota_error(str(client.base_url), client.api_key)
        gate.stop(stop)
        return stop
    error = translate_error(exc, api_key=client.api_key)
    if isinstance(exc, openai.APIStatusError):
        gate.observe(exc.response.headers, admission)
    if error.status_code == 429:
        gate.throttled(error.retry_after, admission)
    return error
