"""``POST /v1/chat/completions``: checks a request like the API does, then answers it or fails it on purpose.

Order of checks: key, body, model, the model's parameter rules, images, rate limits, injected faults,
the model's turn (self-hosted mode: a slot, or a wait in line, or 503) and simulated latency; every
request is recorded in the stats whatever its outcome. Every mode (server/config.py) runs this one
pipeline: the mode only changes what the server around it shows.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.replies.answers import ImageFeatures, measure
from vqa_distill.offline_teacher.replies.reply import purpose_of, reply
from vqa_distill.offline_teacher.replies.structured import ResponseFormat, response_format_of
from vqa_distill.offline_teacher.routes.exchange import STATUS_CLIENT_CLOSED, Exchange, wait_or_disconnect
from vqa_distill.offline_teacher.rules import billing
from vqa_distill.offline_teacher.rules.images import DecodedImage, ImageRejected, decode_image_url
from vqa_distill.offline_teacher.rules.params import parameter_error
from vqa_distill.offline_teacher.rules.schema import (
    ChatRequest,
    ImagePart,
    TextPart,
    completion_body,
    openai_error,
    unauthorized,
    validation_message,
)
from vqa_distill.offline_teacher.server.faults import (
    HTTP_FAULT_STATUS,
    RETRY_AFTER_KINDS,
    FaultRule,
    RequestView,
)
from vqa_distill.offline_teacher.server.state import get_state, request_id

FAULT_MESSAGES: dict[str, tuple[str, str, str | None]] = {  # kind -> (message, type, code)
    "429": ("Rate limit reached for requests (injected fault).", "requests", "rate_limit_exceeded"),
    "500": ("The server had an error while processing your request (injected fault).", "server_error", None),
    "502": ("Bad gateway (injected fault).", "server_error", None),
    "503": (
        "The engine is currently overloaded, please try again later (injected fault).",
        "server_error",
        None,
    ),
    "400": ("The request was refused (injected fault).", "invalid_request_error", "injected_bad_request"),
}
# A body cut off mid-object: what a proxy dropping the connection half-way leaves behind.
BAD_JSON_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis'


@dataclass
class ParsedMessages:
    """The text and images of a conversation, sorted by what the answer and the bill need."""

    texts: list[str]  # every text part of every message, for prompt_tokens
    user_text: str
    system: str
    image_parts: list[ImagePart]


@dataclass
class Prepared:
    """A request found valid and decoded, waiting for the model's time."""

    response_format: ResponseFormat
    parsed: ParsedMessages
    decoded: list[tuple[DecodedImage, ImageFeatures]]


def parse_messages(chat: ChatRequest) -> ParsedMessages:
    """Split the messages into texts, user text, system text and image parts (user messages only)."""
    texts: list[str] = []
    user: list[str] = []
    system: list[str] = []
    images: list[ImagePart] = []
    for message in chat.messages:
        parts: list[TextPart | ImagePart]
        if message.content is None:
            parts = []
        elif isinstance(message.content, str):
            parts = [TextPart(type="text", text=message.content)]
        else:
            parts = list(message.content)
        for part in parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
                if message.role == "user":
                    user.append(part.text)
                elif message.role in ("system", "developer"):
                    system.append(part.text)
            elif message.role == "user":
                images.append(part)
            else:
                raise ImageRejected(f"Image parts are only allowed in user messages, not {message.role}.")
    return ParsedMessages(texts, "\n".join(user), "\n".join(system), images)


def decode_and_measure(parts: list[ImagePart]) -> list[tuple[DecodedImage, ImageFeatures]]:
    """Decode and measure every image of one request (runs in a worker thread)."""
    out = []
    for part in parts:
        image = decode_image_url(part.image_url.url, part.image_url.detail)
        out.append((image, measure(image.thumbnail, image.width, image.height)))
    return out


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """Return a fault's ``Retry-After`` (whole seconds) and ``retry-after-ms`` (what openai reads first)."""
    if seconds is None:
        return {}
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


def shape_answer(answer: str, max_tokens: int | None, fault: FaultRule | None) -> tuple[str | None, str]:
    """Return ``(content, finish_reason)`` after the output cap and any content-shaping fault."""
    if fault is not None and fault.kind == "content_filter":
        return None, "content_filter"
    if fault is not None and fault.kind == "empty":
        return "", "stop"
    if fault is not None and fault.kind == "truncate":
        half = max(1, billing.text_tokens(answer) // 2)
        limit = half if max_tokens is None else min(half, max_tokens)
        return billing.truncate_to_tokens(answer, limit), "length"
    if max_tokens is not None and billing.text_tokens(answer) > max_tokens:
        return billing.truncate_to_tokens(answer, max_tokens), "length"
    return answer, "stop"


async def chat_completions(request: Request) -> Response:
    """Answer one chat completion request, recording it in the stats whatever happens."""
    state = get_state(request)
    ex = Exchange(state, {"t": time.time(), "request_id": request_id(request)})
    if not state.authorized(request):
        return ex.done(unauthorized())
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return ex.done(openai_error(400, f"The request body is not valid JSON: {exc}."))
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        message, param = validation_message(exc)
        return ex.done(openai_error(400, message, param=param))
    ex.rec["model"] = chat.model
    if chat.stream:
        return ex.done(
            openai_error(400, "streaming not supported", param="stream", code="unsupported_parameter")
        )
    if not state.serves(chat.model):
        return ex.done(state.model_missing(chat.model))
    ex.served_model = chat.model
    refused = parameter_error(chat, body)
    if refused is not None:
        return ex.done(refused)
    response_format = response_format_of(chat)
    if isinstance(response_format, str):
        return ex.done(openai_error(400, response_format, param="response_format", code="invalid_value"))
    return await _answer(request, ex, chat, response_format)


async def _answer(
    request: Request, ex: Exchange, chat: ChatRequest, response_format: ResponseFormat
) -> Response:
    """Decode the images, apply the rate limits and faults, and answer a request already found valid."""
    state, rec = ex.state, ex.rec
    try:
        parsed = parse_messages(chat)
        rec["user_text"] = parsed.user_text
        decoded: list[tuple[DecodedImage, ImageFeatures]] = []
        if parsed.image_parts:
            loop = asyncio.get_running_loop()
            decoded = await loop.run_in_executor(state.executor, decode_and_measure, parsed.image_parts)
    except ImageRejected as exc:
        return ex.done(openai_error(400, exc.message, param="messages", code=exc.code))

    images = [image for image, _ in decoded]
    rec["fingerprints"] = tuple(i.fingerprint for i in images)
    rec["image_sizes"] = tuple(i.size_text for i in images)
    sizes = [(i.width, i.height, i.detail) for i in images]
    prompt_tokens = billing.prompt_tokens(chat.model, parsed.texts, sizes, state.image_rule(chat.model))
    rec["prompt_tokens"] = prompt_tokens
    rec["counted_tokens"] = prompt_tokens + (chat.output_cap or 0)
    refusal = state.limiter.admit(chat.model, rec["counted_tokens"])
    if refusal is not None:
        message = refusal.message(chat.model)
        headers = refusal.headers() if state.config.retry_after else {}
        error = openai_error(429, message, type_=refusal.kind, code="rate_limit_exceeded", headers=headers)
        return ex.done(error, rate_limited=refusal.kind)

    view = RequestView(
        model=chat.model,
        user_text=parsed.user_text,
        system=parsed.system,
        fingerprints=rec["fingerprints"],
        image_sizes=tuple((i.width, i.height) for i in images),
        purpose=purpose_of(response_format),
    )
    fault = state.injector.pick(view)
    rec["fault"] = fault.kind if fault else None
    refused = await ex.wait_for_model(request)
    if refused is not None:
        return refused
    try:
        return await _serve(request, ex, chat, Prepared(response_format, parsed, decoded), fault)
    finally:
        ex.end_service()  # an unexpected error must not keep the slot


async def _serve(
    request: Request, ex: Exchange, chat: ChatRequest, ready: Prepared, fault: FaultRule | None
) -> Response:
    """Spend the model's time on a request that has its turn, then answer it (or fail it on purpose)."""
    state, rec = ex.state, ex.rec
    delay = ex.delay()
    # A client that hung up (a killed worker) never receives the answer: recorded 499. Whether it is
    # paid is the API's choice: a real one bills what its model computed (``bill_hung_up``).
    if state.config.bill_hung_up:  # the model runs to the end whoever still listens
        await asyncio.sleep(delay)
        hung_up = await request.is_disconnected()
    else:
        hung_up = delay > 0 and await wait_or_disconnect(request, delay)
        if hung_up:
            return ex.done(Response(status_code=STATUS_CLIENT_CLOSED))
    if fault is not None and fault.kind == "timeout" and await wait_or_disconnect(request, fault.delay_s):
        return ex.done(Response(status_code=STATUS_CLIENT_CLOSED))
    if fault is not None and fault.kind in HTTP_FAULT_STATUS:
        message, type_, code = FAULT_MESSAGES[fault.kind]
        headers = retry_after_headers(fault.retry_after) if fault.kind in RETRY_AFTER_KINDS else {}
        return ex.done(
            openai_error(HTTP_FAULT_STATUS[fault.kind], message, type_=type_, code=code, headers=headers)
        )
    if fault is not None and fault.kind == "bad_json":
        return ex.done(Response(BAD_JSON_BODY, status_code=200, media_type="application/json"))

    parsed = ready.parsed
    features = [f for _, f in ready.decoded]
    answer = reply(ready.response_format, features, parsed.user_text, parsed.system, fault)
    content, finish = shape_answer(answer, chat.output_cap, fault)
    completion_tokens = billing.text_tokens(content or "")
    answered = {"completion_tokens": completion_tokens, "finish_reason": finish, "billed": True}
    if hung_up:  # computed and billed, never delivered
        return ex.done(Response(status_code=STATUS_CLIENT_CLOSED), **answered)
    body_out = completion_body(chat.model, content, finish, rec["prompt_tokens"], completion_tokens)
    return ex.done(JSONResponse(body_out), **answered)
