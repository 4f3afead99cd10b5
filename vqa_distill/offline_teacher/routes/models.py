"""``GET /v1/models``, ``GET /v1/models/{model}`` and ``GET /health``."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.rules.schema import model_not_found, model_object, unauthorized
from vqa_distill.offline_teacher.server.state import get_state

HTTP_NOT_FOUND = 404


async def list_models(request: Request) -> Response:
    """List the served models; needs the key, like the API."""
    state = get_state(request)
    state.stats.other_paths["/v1/models"] += 1
    if not state.authorized(request):
        return unauthorized()
    return JSONResponse({"object": "list", "data": [model_object(m) for m in state.config.served_models]})


async def get_model(request: Request) -> Response:
    """Return one served model, or OpenAI's 404 ``model_not_found``; needs the key, like the API.

    Relays and self-hosted servers have no such route: there it answers the plain 404 of any unknown
    path (no ``model_not_found``), before the key is even looked at, as a missing route does.
    """
    state = get_state(request)
    state.stats.other_paths["/v1/models/{model}"] += 1
    if not state.config.serves_model_lookup:
        raise HTTPException(HTTP_NOT_FOUND)
    if not state.authorized(request):
        return unauthorized()
    model = request.path_params["model"]
    if not state.serves(model):
        return model_not_found(model)
    return JSONResponse(model_object(model))


async def health(request: Request) -> Response:
    """Answer liveness probes; needs no key."""
    state = get_state(request)
    return JSONResponse({"status": "ok", "mode": state.config.mode, "models": state.config.served_models})
