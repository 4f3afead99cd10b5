"""The offline OpenAI-compatible teacher: assembles the routes into a Starlette app and serves it.

Endpoints:
```
POST /v1/chat/completions    non-streaming chat completions (text + base64 data-URL images)   chat.py
GET  /v1/models              the configured model list (needs the key)                         model_routes.py
GET  /v1/models/{model}      one model, or 404 model_not_found (needs the key); relay and
                             self-hosted modes: a plain 404, as a missing route                model_routes.py
GET  /health                 liveness, never needs a key                                       model_routes.py
*    /v1/files...            upload, list, retrieve, content, delete (the Batch API's files)   files_api.py
*    /v1/batches...          create, retrieve, cancel, list batches                            batch_api.py
*    /_admin/...             stats, reset, mode, faults, latency, limits, billing, capacity,
                             batches                                                           admin.py, batch_api.py
```
The mode (``openai``, ``relay``, ``self-hosted``; server/config.py) changes what the server shows around
the one chat pipeline: model names and billing, the model lookup, rate-limit headers, 429s, or a
K-in-service, Q-waiting capacity with 503s.
Starlette rather than FastAPI: the routes are few and parse their own bodies, and the lighter stack
keeps hundreds of concurrent requests cheap.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from vqa_distill.offline_teacher.batch.files import (
    delete_file,
    file_content,
    get_file,
    keyed,
    list_files,
    upload_file,
)
from vqa_distill.offline_teacher.batch.routes import (
    admin_batches,
    admin_reset_all,
    cancel_batch,
    create_batch,
    list_batches,
    retrieve_batch,
)
from vqa_distill.offline_teacher.batch.store import BatchStore
from vqa_distill.offline_teacher.routes.admin import (
    admin,
    admin_billing,
    admin_capacity,
    admin_faults,
    admin_latency,
    admin_limits,
    admin_mode,
    admin_stats,
    http_error,
)
from vqa_distill.offline_teacher.routes.chat import chat_completions
from vqa_distill.offline_teacher.routes.middleware import RequestIdMiddleware
from vqa_distill.offline_teacher.routes.models import get_model, health, list_models
from vqa_distill.offline_teacher.server.config import LISTEN_BACKLOG, ServerConfig
from vqa_distill.offline_teacher.server.state import TeacherState

DECODE_THREADS = max(2, os.cpu_count() or 1)  # Pillow releases the GIL, so one thread per core pays
GRACEFUL_SHUTDOWN_S = 2  # uvicorn waits at most this long for in-flight requests on SIGTERM
KEEP_ALIVE_S = 75  # longer than clients' idle expiry (httpx: 5 s), so the client always closes first


def create_app(config: ServerConfig | None = None) -> Starlette:
    """Build the ASGI app for ``config``; the decode thread pool lives as long as the app's lifespan."""
    state = TeacherState.from_config(config or ServerConfig())
    batches = BatchStore()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.executor = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="teacher-decode")
        try:
            yield
        finally:
            batches.reset()  # stops the batches still running
            state.executor.shutdown(wait=False, cancel_futures=True)
            state.executor = None

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/files", keyed(upload_file), methods=["POST"]),
        Route("/v1/files", keyed(list_files), methods=["GET"]),
        Route("/v1/files/{file_id}", keyed(get_file), methods=["GET"]),
        Route("/v1/files/{file_id}", keyed(delete_file), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", keyed(file_content), methods=["GET"]),
        Route("/v1/batches", keyed(create_batch), methods=["POST"]),
        Route("/v1/batches", keyed(list_batches), methods=["GET"]),
        Route("/v1/batches/{batch_id}", keyed(retrieve_batch), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", keyed(cancel_batch), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/_admin/stats", admin(admin_stats), methods=["GET"]),
        Route("/_admin/reset", admin(admin_reset_all), methods=["POST"]),
        Route("/_admin/batches", admin(admin_batches), methods=["GET", "PUT"]),
        Route("/_admin/faults", admin(admin_faults), methods=["GET", "PUT"]),
        Route("/_admin/latency", admin(admin_latency), methods=["GET", "PUT"]),
        Route("/_admin/limits", admin(admin_limits), methods=["GET", "PUT"]),
        Route("/_admin/billing", admin(admin_billing), methods=["GET", "PUT"]),
        Route("/_admin/capacity", admin(admin_capacity), methods=["GET", "PUT"]),
        Route("/_admin/mode", admin(admin_mode), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.teacher = state
    app.state.batch_store = batches
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
        backlog=LISTEN_BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(uv_config).run(sockets=[sock] if sock is not None else None)
