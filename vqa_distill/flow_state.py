"""Read what a finished flow run returned, with Prefect's public async API, in one place.

A flow that ends ``Failed`` on purpose (some images failed, a fatal run error) still carries its
data: the summary, or the error that stopped it. Callers get that value back instead of an
exception, and decide themselves what a failure means.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from vqa_distill.errors import FatalRunError

P = ParamSpec("P")
R = TypeVar("R")


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


def said_once(exc: FatalRunError) -> Any:
    """Return a Failed state carrying ``exc``, after one log line with its reason.

    A wrong key, endpoint or database is the user's to fix, not a bug: a traceback would bury the
    one line that says what to do.
    """
    # Imported here: the command line imports this module to register commands, and --help must stay light.
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger
    from prefect.states import Failed

    try:
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()
    except MissingContextError:  # called outside a run (a plain function call in a test)
        logger = logging.getLogger("vqa_distill")
    logger.error("%s", exc)
    return Failed(message=str(exc), data=exc)


def fatal_errors_fail_the_run(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap an async flow function so a ``FatalRunError`` ends its run Failed in one line (``said_once``).

    Put it under ``@flow``: Prefect reads the wrapped function's signature and docstring, so the
    parameters form is unchanged. The signature is given with its annotations evaluated: Prefect
    resolves string annotations in the wrapper's module, which does not import the flow's types.
    """

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except FatalRunError as exc:
            return said_once(exc)

    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return run
