"""The offline OpenAI-compatible teacher: a Starlette app that answers vision chat requests deterministically.

Endpoints:
```
POST /v1/chat/completions    non-streaming chat completions (text + base64 data-URL images)
GET  /v1/models              the configured model list
GET  /v1/models/{model}      one model, or 404 model_not_found
GET  /health                 liveness, never needs a key
GET  /_admin/stats           every chat request received, plus totals
POST /_admin/reset           clear stats and the per-key fault counts
GET|PUT /_admin/faults       read / replace the fault rules (a JSON list)
GET|PUT /_admin/latency      read / set {"latency_s": .., "jitter_s": ..}
```
Errors use OpenAI's body shape, so the real ``openai`` client raises its real exception classes.
Starlette rather than FastAPI: the routes are few and parse their own bodies, and the lighter stack
keeps hundreds of concurrent requests cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vqa_distill.offline_teacher import billing as tokens
from vqa_distill.offline_teacher.answers import ImageFeatures, compose_answer, measure
from vqa_distill.offline_teacher.config import ServerConfig
from vqa_distill.offline_teacher.faults import (
    FAULT_RULES,
    HTTP_FAULT_STATUS,
    RETRY_AFTER_KINDS,
    FaultInjector,
    FaultRule,
    RequestView,
)
from vqa_distill.offline_teacher.images import DecodedImage, ImageRejected, decode_image_url
from vqa_distill.offline_teacher.stats import RequestRecord, Stats

REQUEST_ID_HEADER = "x-request-id"
DECODE_THREADS = max(2, os.cpu_count() or 1)  # Pillow releases the GIL, so one thread per core pays
DISCONNECT_POLL_S = 0.25  # how often a "timeout" fault checks whether the client gave up
GRACEFUL_SHUTDOWN_S = 2  # uvicorn waits at most this long for in-flight requests on SIGTERM
KEEP_ALIVE_S = 75  # longer than clients' idle expiry (httpx: 5 s), so the client always closes first
STATUS_CLIENT_CLOSED = 499  # recorded (never sent) when the client hung up before the answer
SYSTEM_FINGERPRINT = "fp_vqa_distill_offline"
OWNED_BY = "vqa-distill"

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


# ----------------------------------------------------------------------------- request schema


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
    stream: bool | None = False
    n: int | None = Field(default=1, ge=1, le=1)


class LatencySettings(BaseModel):
    """Body of ``PUT /_admin/latency``."""

    model_config = ConfigDict(extra="forbid")
    latency_s: float = Field(ge=0)
    jitter_s: float = Field(default=0.0, ge=0)


# ----------------------------------------------------------------------------- state


@dataclass
class TeacherState:
    """Everything the routes share; touched from the event loop only (decoding threads get plain data)."""

    config: ServerConfig
    injector: FaultInjector
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
            latency_s=config.latency_s,
            jitter_s=config.jitter_s,
            rng=random.Random(config.seed),
        )

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


def _state(request: Request) -> TeacherState:
    state: TeacherState = request.app.state.teacher
    return state


def _request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_HEADER, ""))


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
    """Return the 404 for a model this server does not serve."""
    message = f"The model `{model}` does not exist or you do not have access to it."
    return openai_error(404, message, code="model_not_found", param="model")


def model_object(model: str) -> dict[str, Any]:
    """Return one entry of the models list."""
    return {"id": model, "object": "model", "created": 0, "owned_by": OWNED_BY}


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """Return ``Retry-After`` (whole seconds, per HTTP) and ``retry-after-ms`` (what openai reads first)."""
    if seconds is None:
        return {}
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


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


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ())) or None
    return f"Invalid request: {param or 'body'}: {first.get('msg', 'invalid value')}.", param


# ----------------------------------------------------------------------------- chat completions


@dataclass
class _Parsed:
    texts: list[str]  # every text part of every message, for prompt_tokens
    user_text: str
    system: str
    image_parts: list[ImagePart]


def _parse_messages(chat: ChatRequest) -> _Parsed:
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
    return _Parsed(texts, "\n".join(user), "\n".join(system), images)


def _decode_and_measure(parts: list[ImagePart]) -> list[tuple[DecodedImage, ImageFeatures]]:
    """Decode and measure every image of one request (runs in a worker thread)."""
    out = []
    for part in parts:
        image = decode_image_url(part.image_url.url, part.image_url.detail)
        out.append((image, measure(image.thumbnail, image.width, image.height)))
    return out


async def _wait_or_disconnect(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; return True early if the client hung up meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(DISCONNECT_POLL_S, left))
        if await request.is_disconnected():
            return True
    return False


async def chat_completions(request: Request) -> Response:
    """Answer one chat completion request, recording it in the stats whatever happens."""
    state = _state(request)
    started, t = time.monotonic(), time.time()
    rec: dict[str, Any] = {"t": t, "request_id": _request_id(request)}

    def done(response: Response, **fields: Any) -> Response:
        rec.update(fields)
        state.stats.record(
            RequestRecord(status=response.status_code, duration_s=time.monotonic() - started, **rec)
        )
        return response

    if not state.authorized(request):
        return done(unauthorized())
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return done(openai_error(400, f"The request body is not valid JSON: {exc}."))
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        message, param = _validation_message(exc)
        return done(openai_error(400, message, param=param))
    rec["model"] = chat.model
    if chat.stream:
        return done(
            openai_error(400, "streaming not supported", param="stream", code="unsupported_parameter")
        )
    if chat.model not in state.config.models:
        return done(model_not_found(chat.model))

    try:
        parsed = _parse_messages(chat)
        rec["user_text"] = parsed.user_text
        decoded: list[tuple[DecodedImage, ImageFeatures]] = []
        if parsed.image_parts:
            loop = asyncio.get_running_loop()
            decoded = await loop.run_in_executor(state.executor, _decode_and_measure, parsed.image_parts)
    except ImageRejected as exc:
        return done(openai_error(400, exc.message, param="messages", code=exc.code))

    images = [image for image, _ in decoded]
    rec["fingerprints"] = tuple(i.fingerprint for i in images)
    rec["image_sizes"] = tuple(i.size_text for i in images)
    prompt_tokens = tokens.prompt_tokens(parsed.texts, [(i.width, i.height, i.detail) for i in images])
    rec["prompt_tokens"] = prompt_tokens
    view = RequestView(
        model=chat.model,
        user_text=parsed.user_text,
        system=parsed.system,
        fingerprints=rec["fingerprints"],
        image_sizes=tuple((i.width, i.height) for i in images),
    )
    fault = state.injector.pick(view)
    rec["fault"] = fault.kind if fault else None

    delay = state.delay()
    if delay > 0:
        await asyncio.sleep(delay)
    if fault is not None and fault.kind == "timeout" and await _wait_or_disconnect(request, fault.delay_s):
        return done(Response(status_code=STATUS_CLIENT_CLOSED))
    if fault is not None and fault.kind in HTTP_FAULT_STATUS:
        message, type_, code = FAULT_MESSAGES[fault.kind]
        headers = retry_after_headers(fault.retry_after) if fault.kind in RETRY_AFTER_KINDS else {}
        return done(
            openai_error(HTTP_FAULT_STATUS[fault.kind], message, type_=type_, code=code, headers=headers)
        )
    if fault is not None and fault.kind == "bad_json":
        return done(Response(BAD_JSON_BODY, status_code=200, media_type="application/json"))

    answer = compose_answer([f for _, f in decoded], parsed.user_text, parsed.system)
    content, finish = _apply_limits(answer, chat.max_completion_tokens or chat.max_tokens, fault)
    completion_tokens = tokens.text_tokens(content or "")
    body_out = completion_body(chat.model, content, finish, prompt_tokens, completion_tokens)
    return done(JSONResponse(body_out), completion_tokens=completion_tokens, finish_reason=finish)


def _apply_limits(answer: str, max_tokens: int | None, fault: FaultRule | None) -> tuple[str | None, str]:
    """Return ``(content, finish_reason)`` after ``max_tokens`` and any content-shaping fault."""
    if fault is not None and fault.kind == "content_filter":
        return None, "content_filter"
    if fault is not None and fault.kind == "empty":
        return "", "stop"
    if fault is not None and fault.kind == "truncate":
        half = max(1, tokens.text_tokens(answer) // 2)
        limit = half if max_tokens is None else min(half, max_tokens)
        return tokens.truncate_to_tokens(answer, limit), "length"
    if max_tokens is not None and tokens.text_tokens(answer) > max_tokens:
        return tokens.truncate_to_tokens(answer, max_tokens), "length"
    return answer, "stop"


# ----------------------------------------------------------------------------- models, health, admin


async def list_models(request: Request) -> Response:
    """List the served models."""
    state = _state(request)
    state.stats.other_paths["/v1/models"] += 1
    if not state.authorized(request):
        return unauthorized()
    return JSONResponse({"object": "list", "data": [model_object(m) for m in state.config.models]})


async def get_model(request: Request) -> Response:
    """Return one served model, or 404."""
    state = _state(request)
    state.stats.other_paths["/v1/models/{model}"] += 1
    if not state.authorized(request):
        return unauthorized()
    model = request.path_params["model"]
    if model not in state.config.models:
        return model_not_found(model)
    return JSONResponse(model_object(model))


async def health(request: Request) -> Response:
    """Answer liveness probes; needs no key."""
    return JSONResponse({"status": "ok", "models": _state(request).config.models})


def _admin(
    handler: Callable[[Request, TeacherState], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler with the same key check as the API (when a key is configured)."""

    async def endpoint(request: Request) -> Response:
        state = _state(request)
        if not state.authorized(request):
            return unauthorized()
        return await handler(request, state)

    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from exc


async def admin_stats(request: Request, state: TeacherState) -> Response:
    """Return every chat request received and the totals."""
    return JSONResponse(state.stats.snapshot())


async def admin_reset(request: Request, state: TeacherState) -> Response:
    """Clear the stats and the per-key fault counts."""
    state.stats.clear()
    state.injector.reset()
    return JSONResponse({"status": "reset"})


async def admin_faults(request: Request, state: TeacherState) -> Response:
    """Return the fault rules, or replace them with the JSON list in the body (PUT)."""
    if request.method == "PUT":
        data = await _json_body(request)
        if isinstance(data, dict) and "faults" in data:
            data = data["faults"]
        try:
            rules = FAULT_RULES.validate_python(data)
        except ValidationError as exc:
            return openai_error(400, f"Invalid fault rules: {exc}", param="faults")
        state.injector.replace(rules)
    return JSONResponse({"faults": [r.model_dump() for r in state.injector.rules]})


async def admin_latency(request: Request, state: TeacherState) -> Response:
    """Return the latency settings, or replace them (PUT)."""
    if request.method == "PUT":
        try:
            settings = LatencySettings.model_validate(await _json_body(request))
        except ValidationError as exc:
            return openai_error(400, f"Invalid latency settings: {exc}", param="latency_s")
        state.latency_s, state.jitter_s = settings.latency_s, settings.jitter_s
    return JSONResponse({"latency_s": state.latency_s, "jitter_s": state.jitter_s})


async def http_error(request: Request, exc: Exception) -> Response:
    """Render routing errors (404, 405, bad admin bodies) in OpenAI's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return openai_error(status, f"{request.method} {request.url.path}: {detail}")


# ----------------------------------------------------------------------------- assembly


class RequestIdMiddleware:
    """Give every request an id, visible to handlers (scope) and clients (``x-request-id`` header).

    Plain ASGI rather than ``BaseHTTPMiddleware``, which costs a task per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        scope[REQUEST_ID_HEADER] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(config: ServerConfig | None = None) -> Starlette:
    """Build the ASGI app for ``config``; the decode thread pool lives as long as the app's lifespan."""
    state = TeacherState.from_config(config or ServerConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.executor = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="teacher-decode")
        try:
            yield
        finally:
            state.executor.shutdown(wait=False, cancel_futures=True)
            state.executor = None

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/_admin/stats", _admin(admin_stats), methods=["GET"]),
        Route("/_admin/reset", _admin(admin_reset), methods=["POST"]),
        Route("/_admin/faults", _admin(admin_faults), methods=["GET", "PUT"]),
        Route("/_admin/latency", _admin(admin_latency), methods=["GET", "PUT"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.teacher = state
    return app


def serve(config: ServerConfig, *, sock: socket.socket | None = None) -> None:
    """Serve ``config`` with uvicorn until SIGINT/SIGTERM; on ``sock`` when given (already bound)."""
    import uvicorn  # imported here: building the app must not need the server

    uv_config = uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="info" if config.access_log else "warning",  # uvicorn logs access lines at INFO
        access_log=config.access_log,
        lifespan="on",
        backlog=2048,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(uv_config).run(sockets=[sock] if sock is not None else None)
