"""Read what a finished flow run returned, with Prefect's public async API, in one place.

A flow that ends ``Failed`` on purpose (some images failed, a fatal run error) still carries its
data: the summary, or the error that stopped it. Callers get that value back instead of an
exception, and decide themselves what a failure means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FinishedRun:
    """A finished flow run: the value its final state holds (a result or an exception) and its id."""

    result: Any
    flow_run_id: str | None


async def final_result(state: Any) -> Any:
    """Return the value of a final flow-run state, an exception included, without raising it."""
    return await state.aresult(raise_on_failure=False)


async def finished(state_call: Awaitable[Any]) -> FinishedRun:
    """Await a ``flow(..., return_state=True)`` call and return its final value and flow run id."""
    state = await state_call
    flow_run_id = state.state_details.flow_run_id
    return FinishedRun(await final_result(state), str(flow_run_id) if flow_run_id else None)


def run_flow(state_call: Awaitable[Any]) -> FinishedRun:
    """Run an async flow called with ``return_state=True`` to the end, from synchronous code (the CLI)."""
    return asyncio.run(finished(state_call))
