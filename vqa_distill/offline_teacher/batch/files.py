"""``/v1/files``: the Files API the Batch API needs, kept in memory.

```
POST   /v1/files                 upload (multipart/form-data: file, purpose)
GET    /v1/files                 list (purpose, after, limit, order; newest first by default)
GET    /v1/files/{id}            one file object
GET    /v1/files/{id}/content    the bytes
DELETE /v1/files/{id}            forget it
```
Multipart bodies are split here (a few lines, binary-safe) rather than with python-multipart, which
the server does not otherwise need.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vqa_distill.offline_teacher.rules.schema import openai_error, unauthorized
from vqa_distill.offline_teacher.server.state import get_state

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
DEFAULT_LIST_LIMIT = 10_000  # the API's default and maximum page for files
_DISPOSITION = re.compile(rb'(\w+)="((?:[^"\\]|\\.)*)"')

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class StoredFile:
    """One uploaded (or generated) file."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def to_json(self) -> dict[str, Any]:
        """Return the API's file object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    """Files by id, in creation order; touched from the event loop only."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._serial = itertools.count()

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        """Store ``data`` under a new id."""
        # A serial prefix keeps ids sortable by creation even within one second.
        stored = StoredFile(f"file-{next(self._serial):08d}{uuid.uuid4().hex[:16]}", filename, purpose, data)
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """Return the file, or None."""
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        """Forget the file; return whether it existed."""
        return self._files.pop(file_id, None) is not None

    def page(
        self, *, purpose: str | None, after: str | None, limit: int, newest_first: bool
    ) -> dict[str, Any]:
        """Return one page of the list, as ``GET /v1/files`` answers it."""
        files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        if newest_first:
            files.reverse()
        return list_page([f.to_json() for f in files], after, limit)

    def clear(self) -> None:
        """Forget every file."""
        self._files.clear()


def list_page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """Return the cursor page of ``items`` after the one whose id is ``after`` (OpenAI's list shape)."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    data = items[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(items),
    }


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Return ``{field name: (file name or None, bytes)}`` of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part has no header end")
        disposition = next(
            (line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition:")), b""
        )
        params = {k.decode().lower(): v.decode("utf-8") for k, v in _DISPOSITION.findall(disposition)}
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), content.removesuffix(b"\r\n"))
    return fields


def files_of(request: Request) -> FileStore:
    """Return the app's file store."""
    store: FileStore = request.app.state.batch_store.files
    return store


def keyed(handler: Handler) -> Handler:
    """Refuse requests without the expected API key, as every /v1 route does."""

    async def endpoint(request: Request) -> Response:
        if not get_state(request).authorized(request):
            return unauthorized()
        return await handler(request)

    endpoint.__doc__ = handler.__doc__
    return endpoint


def no_such_file(file_id: str) -> JSONResponse:
    """Return the API's 404 for an unknown file id."""
    return openai_error(404, f"No such File object: {file_id}", param="id", code="file_not_found")


def page_limit(request: Request, default: int, maximum: int) -> int:
    """Return the ``limit`` query parameter within 1..maximum (400 handled by the caller on garbage)."""
    return max(1, min(maximum, int(request.query_params.get("limit", default))))


async def upload_file(request: Request) -> Response:
    """Store an uploaded file (multipart: ``file`` and ``purpose``)."""
    try:
        fields = parse_multipart(request.headers.get("content-type", ""), await request.body())
    except ValueError as exc:
        return openai_error(400, f"Invalid upload: {exc}.", param="file")
    purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
    if purpose not in FILE_PURPOSES:
        return openai_error(
            400, f"Invalid purpose {purpose!r}: expected one of {', '.join(FILE_PURPOSES)}.", param="purpose"
        )
    if "file" not in fields:
        return openai_error(400, "Missing required parameter: 'file'.", param="file")
    filename, data = fields["file"]
    return JSONResponse(files_of(request).add(filename or "upload", purpose, data).to_json())


async def list_files(request: Request) -> Response:
    """List files, newest first unless ``order=asc``."""
    try:
        limit = page_limit(request, DEFAULT_LIST_LIMIT, DEFAULT_LIST_LIMIT)
    except ValueError:
        return openai_error(400, "Invalid 'limit': expected an integer.", param="limit")
    query = request.query_params
    page = files_of(request).page(
        purpose=query.get("purpose"),
        after=query.get("after"),
        limit=limit,
        newest_first=query.get("order") != "asc",
    )
    return JSONResponse(page)


async def get_file(request: Request) -> Response:
    """Return one file object."""
    file_id = request.path_params["file_id"]
    stored = files_of(request).get(file_id)
    return JSONResponse(stored.to_json()) if stored else no_such_file(file_id)


async def file_content(request: Request) -> Response:
    """Return a file's bytes."""
    file_id = request.path_params["file_id"]
    stored = files_of(request).get(file_id)
    if stored is None:
        return no_such_file(file_id)
    return Response(stored.data, media_type="application/octet-stream")


async def delete_file(request: Request) -> Response:
    """Delete a file."""
    file_id = request.path_params["file_id"]
    if not files_of(request).delete(file_id):
        return no_such_file(file_id)
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})
