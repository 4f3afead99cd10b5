"""ASGI middleware of the offline teacher."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vqa_distill.offline_teacher.server.state import REQUEST_ID_HEADER


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
