"""The clients of a run's Batch API calls: one per endpoint and key source, made on first use, closed together."""

from __future__ import annotations

from types import TracebackType

from openai import AsyncOpenAI

from vqa_distill.teacher.endpoint.client import open_client
from vqa_distill.teacher.params import DEFAULT_TIMEOUT_S


class BatchClients:
    """Clients by (base_url, api_key_block): a collect may meet batches sent to several endpoints."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S):
        self._timeout = timeout
        self._clients: dict[tuple[str | None, str | None], AsyncOpenAI] = {}

    async def get(self, base_url: str | None, api_key_block: str | None) -> AsyncOpenAI:
        """Return the client of an endpoint, its key read from the Secret block or OPENAI_API_KEY."""
        where = (base_url, api_key_block)
        if where not in self._clients:
            self._clients[where] = await open_client(base_url=base_url, api_key_block=api_key_block, timeout=self._timeout)
        return self._clients[where]

    async def aclose(self) -> None:
        """Close every client made."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> BatchClients:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
