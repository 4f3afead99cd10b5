"""The ``/_admin`` endpoints that tests and benchmarks steer the server with, and JSON routing errors.

```
GET  /_admin/stats        every chat request received, plus totals (429s and 503 overloads included)
POST /_admin/reset        clear stats and fault counts; restore the configured limits (buckets full) and capacity
GET  /_admin/mode         the mode and what it shows: models, model lookup, rate-limit headers, aliases
GET|PUT /_admin/faults    read / replace the fault rules (a JSON list)
GET|PUT /_admin/latency   read / set {"latency_s": .., "jitter_s": ..}
GET|PUT /_admin/limits    read / set {"rpm": .., "tpm": ..} (null: unlimited); GET adds what each model has left
GET|PUT /_admin/billing   read / set {"bill_hung_up": ..}: bill an answer whose client hung up, as a real API does
GET|PUT /_admin/capacity  read / set {"concurrency": K, "queue_size": Q, "latency_per_active_s": ..}
                          (self-hosted); GET adds in_service, queued, their peaks and the overload count
```
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.rules.schema import (
    BillingSettings,
    CapacitySettings,
    LatencySettings,
    LimitSettings,
    openai_error,
    unauthorized,
)
from vqa_distill.offline_teacher.server.faults import FAULT_RULES
from vqa_distill.offline_teacher.server.state import TeacherState, get_state

AdminHandler = Callable[[Request, TeacherState], Awaitable[Response]]


def admin(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler with the same key check as the API (when a key is configured)."""

    async def endpoint(request: Request) -> Response:
        state = get_state(request)
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
    """Clear the stats and fault counts, and restore the configured limits."""
    state.reset()
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


async def admin_billing(request: Request, state: TeacherState) -> Response:
    """Return whether hung-up clients' answers are billed, or set it (PUT)."""
    if request.method == "PUT":
        try:
            settings = BillingSettings.model_validate(await _json_body(request))
        except ValidationError as exc:
            return openai_error(400, f"Invalid billing settings: {exc}", param="bill_hung_up")
        state.config.bill_hung_up = settings.bill_hung_up
    return JSONResponse({"bill_hung_up": state.config.bill_hung_up})


async def admin_limits(request: Request, state: TeacherState) -> Response:
    """Return the rate limits and what each model has left, or replace the limits (PUT; buckets start full)."""
    if request.method == "PUT" and state.config.self_hosted:
        return openai_error(400, "A self-hosted server has no rate limits: set its capacity.", param="limits")
    if request.method == "PUT":
        try:
            settings = LimitSettings.model_validate(await _json_body(request))
        except ValidationError as exc:
            return openai_error(400, f"Invalid rate limits: {exc}", param="limits")
        state.limiter.configure(settings.rpm, settings.tpm)
    return JSONResponse(state.limiter.snapshot())


async def admin_capacity(request: Request, state: TeacherState) -> Response:
    """Return K, Q and how many are in service and waiting, or set K, Q and the batch slowdown (PUT)."""
    if request.method == "PUT":
        if not state.config.self_hosted:
            return openai_error(400, "Only a self-hosted server has a capacity.", param="capacity")
        try:
            settings = CapacitySettings.model_validate(await _json_body(request))
        except ValidationError as exc:
            return openai_error(400, f"Invalid capacity: {exc}", param="capacity")
        state.capacity.configure(settings.concurrency, settings.queue_size)
        state.latency_per_active_s = settings.latency_per_active_s
    return JSONResponse(
        {
            **state.capacity.snapshot(),
            "latency_per_active_s": state.latency_per_active_s,
            "enforced": state.config.self_hosted,
        }
    )


async def admin_mode(request: Request, state: TeacherState) -> Response:
    """Return the mode and what it shows of the server (read-only: a mode is chosen at start-up)."""
    config = state.config
    return JSONResponse(
        {
            "mode": config.mode,
            "models": config.served_models,
            "model_lookup": config.serves_model_lookup,
            "ratelimit_headers": config.sends_ratelimit_headers,
            "retry_after": config.retry_after,
            "rate_limits": {"rpm": state.limiter.rpm, "tpm": state.limiter.tpm},
            "bill_as": dict(config.bill_as),
            "qwen_max_pixels": config.qwen_max_pixels,
        }
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Render routing errors (404, 405, bad admin bodies) in OpenAI's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return openai_error(status, f"{request.method} {request.url.path}: {detail}")
