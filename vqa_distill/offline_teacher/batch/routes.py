"""``/v1/batches``: create, retrieve, cancel and list batches, and the admin endpoint that steers them.

```
POST /v1/batches                  create from an uploaded file (purpose batch), endpoint /v1/chat/completions
GET  /v1/batches                  list, newest first (after, limit: 1..100, default 20)
GET  /v1/batches/{id}             one batch
POST /v1/batches/{id}/cancel      cancelling -> cancelled, keeping the lines answered so far
GET|PUT /_admin/batches           the clock and injected outcomes (batch_store.BatchSettings), and each batch
```
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.batch.files import list_page, page_limit
from vqa_distill.offline_teacher.batch.runner import run_batch
from vqa_distill.offline_teacher.batch.store import (
    ACTIVE_STATUSES,
    BatchSettings,
    StoredBatch,
    batch_store_of,
)
from vqa_distill.offline_teacher.routes.admin import admin_reset
from vqa_distill.offline_teacher.rules.schema import openai_error
from vqa_distill.offline_teacher.server.state import TeacherState, get_state

ENDPOINTS = ("/v1/chat/completions",)  # what this server can answer in a batch
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


def _metadata_problem(metadata: Any) -> str | None:
    """Return why ``metadata`` is refused (the API's limits), or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_KEYS:
        return f"'metadata' must be an object of at most {MAX_METADATA_KEYS} keys."
    for key, value in metadata.items():
        if (
            len(key) > MAX_METADATA_KEY_CHARS
            or not isinstance(value, str)
            or len(value) > MAX_METADATA_VALUE_CHARS
        ):
            return (
                f"'metadata' keys are at most {MAX_METADATA_KEY_CHARS} characters and values strings of at "
                f"most {MAX_METADATA_VALUE_CHARS}."
            )
    return None


async def create_batch(request: Request) -> Response:
    """Create a batch from an uploaded input file and start its clock."""
    store, state = batch_store_of(request), get_state(request)
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return openai_error(400, f"The request body is not valid JSON: {exc}.")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
    stored = store.files.get(str(file_id))
    if stored is None:
        return openai_error(
            400, f"No such File object: {file_id}", param="input_file_id", code="file_not_found"
        )
    if stored.purpose != "batch":
        return openai_error(
            400, f"File {file_id} has purpose {stored.purpose!r}, not 'batch'.", param="input_file_id"
        )
    if endpoint not in ENDPOINTS:
        return openai_error(
            400, f"Unsupported endpoint {endpoint!r}: this server batches {ENDPOINTS[0]}.", param="endpoint"
        )
    if body.get("completion_window") != "24h":
        return openai_error(400, "'completion_window' must be '24h'.", param="completion_window")
    problem = _metadata_problem(body.get("metadata"))
    if problem:
        return openai_error(400, problem, param="metadata")
    batch = StoredBatch(store.new_id(), stored.id, str(endpoint), body.get("metadata"), store.settings)
    store.batches[batch.id] = batch
    batch.task = asyncio.get_running_loop().create_task(run_batch(batch, store, state))
    return JSONResponse(batch.to_json())


def _batch_or_404(request: Request) -> StoredBatch | Response:
    batch_id = request.path_params["batch_id"]
    batch = batch_store_of(request).batches.get(batch_id)
    if batch is None:
        return openai_error(404, f"No batch found with id '{batch_id}'.", param="batch_id", code="not_found")
    return batch


async def retrieve_batch(request: Request) -> Response:
    """Return one batch."""
    found = _batch_or_404(request)
    return found if isinstance(found, Response) else JSONResponse(found.to_json())


async def cancel_batch(request: Request) -> Response:
    """Ask a batch to stop: it is ``cancelling``, then ``cancelled`` with its answered lines."""
    found = _batch_or_404(request)
    if isinstance(found, Response):
        return found
    if found.status not in ACTIVE_STATUSES:
        return openai_error(409, f"Cannot cancel a batch with status '{found.status}'.", code="invalid_state")
    if found.status != "cancelling":
        found.move("cancelling")
        found.cancel.set()
    return JSONResponse(found.to_json())


async def list_batches(request: Request) -> Response:
    """List batches, newest first, a cursor page at a time."""
    try:
        limit = page_limit(request, DEFAULT_PAGE, MAX_PAGE)
    except ValueError:
        return openai_error(400, "Invalid 'limit': expected an integer.", param="limit")
    newest_first = [b.to_json() for b in reversed(batch_store_of(request).batches.values())]
    return JSONResponse(list_page(newest_first, request.query_params.get("after"), limit))


async def admin_batches(request: Request, state: TeacherState) -> Response:
    """Return the batch settings and batches, or replace them (PUT; max_lines holds running batches at once)."""
    store = batch_store_of(request)
    if request.method == "PUT":
        try:
            store.settings = BatchSettings.model_validate(json.loads(await request.body()))
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            return openai_error(400, f"Invalid batch settings: {exc}", param="batches")
    return JSONResponse(store.snapshot())


async def admin_reset_all(request: Request, state: TeacherState) -> Response:
    """Reset what ``/_admin/reset`` resets, and the batches, their files and settings too."""
    batch_store_of(request).reset()
    return await admin_reset(request, state)
