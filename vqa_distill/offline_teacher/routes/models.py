"""``GET /v1/models``, ``GET /v1/models/{model}`` and ``GET /health``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.rules.schema import model_not_found, model_object, unauthorized
from vqa_distill.offline_teacher.server.state import get_state


async def list_models(request: Request) -> Response:
    """List the served models; needs the key, like the API."""
    state = get_state(request)
    state.stats.other_paths["/v1/models"] += 1
    if not state.authorized(request):
        return unauthorized()
    return JSONResponse({"object": "list", "data": [model_object(m) for m in state.config.models]})


async def get_model(request: Request) -> Response:
    """Return one served model, or OpenAI's 404 ``model_not_found``; needs the key, like the API."""
    state = get_state(request)
    state.stats.other_paths["/v1/models/{model}"] += 1
    if not state.authorized(request):
        return unauthorized()
    model = request.path_params["model"]
    if model not in state.config.models:
        return model_not_found(model)
    return JSONResponse(model_object(model))


async def health(request: Request) -> Response:
    """Answer liveness probes; needs no key."""
    return JSONResponse({"status": "ok", "models": get_state(request).config.models})
