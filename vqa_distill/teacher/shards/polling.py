"""How a sharded run's parent waits for its shard runs: poll, start crashed ones again, outlast the API.

The state machine is plain: the parent's flow passes two callables, one that starts the next run of
a shard and one that reads a run's state, as the fan-out is passed its task. So every decision (wait,
done, start again, give up; how long an unreachable Prefect API is tolerated) is tested with plain
coroutines and a fake clock, and the flow only binds the Prefect calls.

- **the re-run decision** per shard run state: wait, done, start again (crashed), or give up;
- **patience with the API**: a Prefect server restart mid-run must not fail the waiting parent.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from prefect.exceptions import PrefectHTTPStatusError

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.params import DEFAULT_SHARD_DEADLINE_H
from vqa_distill.teacher.run_log import run_logger
from vqa_distill.waiting import retry_while_async

T = TypeVar("T")
SHARD_POLL_S = 2.0  # how often the parent reads its shard runs' states
API_PATIENCE_S = 600.0  # how long the parent keeps polling an unreachable Prefect API (a server restart)
UNCLAIMED_WARNING_S = 60.0  # shard runs nobody took by then: say why the parent seems stuck, once

StartShard = Callable[["ShardRun"], Awaitable[str]]  # start the next run of a shard; return its flow run id
ReadState = Callable[[str], Awaitable[tuple[str | None, str | None]]]  # a flow run's (state type, message)


class Next(enum.Enum):
    """What the parent does about one shard run after reading its state."""

    WAIT = "wait"  # scheduled, pending, running, paused: not final yet
    DONE = "done"  # completed, or failed with its failures recorded: gathered, never re-run
    RERUN = "rerun"  # crashed (its process or machine died): start a new run; the ledger makes it pay less
    GIVE_UP = "give up"  # crashed too often, or cancelled by a person: its unasked requests stay unasked


WAITING_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"})


def next_step(state_type: str | None, attempt: int, max_attempts: int) -> Next:
    """Decide about a shard run in ``state_type`` on its ``attempt``-th run (1-based) of ``max_attempts``.

    CRASHED is what the worker reports when the run's process dies, and what the heartbeat automation
    (ops/deploy.py) sets when a whole worker machine went silent: both are infrastructure, so the
    shard is started again. FAILED means requests failed after their retries: re-running would pay
    for the same refusals, so they are reported instead. CANCELLED is a person's decision.
    """
    if state_type is None or state_type in WAITING_STATES:
        return Next.WAIT
    if state_type in {"COMPLETED", "FAILED"}:
        return Next.DONE
    if state_type == "CRASHED" and attempt < max_attempts:
        return Next.RERUN
    return Next.GIVE_UP


@dataclass
class ShardRun:
    """One shard's runs so far: the current run, how many were started, and how it ended."""

    index: int
    flow_run_ids: list[str] = field(default_factory=list)
    state: str | None = None
    message: str | None = None
    outcome: Next = Next.WAIT

    @property
    def attempt(self) -> int:
        """Return how many runs of this shard were started."""
        return len(self.flow_run_ids)

    @property
    def current(self) -> str:
        """Return the id of the latest run of this shard."""
        return self.flow_run_ids[-1]


def gave_up(runs: Iterable[ShardRun]) -> list[ShardRun]:
    """Return the shards that ended without all their requests asked (crashed too often or cancelled)."""
    return [run for run in runs if run.outcome is Next.GIVE_UP]


def unfinished_message(runs: Iterable[ShardRun]) -> str:
    """Say which shards did not complete and why ('' when all did): a parent with one is Failed.

    A shard that failed because requests failed says so and its failures are counted; one stopped
    by a fatal error (a refused key) or given up would otherwise leave requests silently unasked.
    """
    return "; ".join(
        f"shard {run.index + 1} {(run.state or 'unknown').lower()}"
        + (f" after {run.attempt} runs" if run.attempt > 1 else "")
        + f": {run.message or 'no message'}"
        for run in runs
        if run.state != "COMPLETED"
    )


class ApiPatience:
    """Tolerate an unreachable Prefect API for a while: a server restart must not fail the waiting parent.

    ``failed(now)`` is called on each failed poll and says whether to keep trying; ``ok()`` after a
    good one starts the clock afresh. Time is passed in, so tests need no sleeping.
    """

    def __init__(self, patience_s: float = API_PATIENCE_S):
        self.patience_s = patience_s
        self.down_since: float | None = None

    def ok(self) -> None:
        """Record a successful call: the next outage gets the full patience again."""
        self.down_since = None

    def failed(self, now: float) -> bool:
        """Record a failed call at ``now`` (monotonic seconds); return True while still within patience."""
        if self.down_since is None:
            self.down_since = now
        return now - self.down_since <= self.patience_s


def is_transient_api_error(status_code: int | None) -> bool:
    """Return whether an API answer with this HTTP status is worth polling again (None: no answer at all)."""
    return status_code is None or status_code in {408, 429} or status_code >= 500


def is_transient_prefect_error(exc: BaseException) -> bool:
    """Return whether a failed Prefect API call is worth making again: no answer at all, or a 408/429/5xx."""
    if isinstance(exc, PrefectHTTPStatusError):
        return is_transient_api_error(exc.response.status_code)
    return isinstance(exc, httpx.TransportError)


async def patiently(
    call: Callable[[], Awaitable[T]], patience: ApiPatience, what: str, *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
) -> T:  # fmt: skip
    """Await ``call`` until it succeeds, retrying while the Prefect API is unreachable or answers 5xx."""
    result = await retry_while_async(
        call, Exception, transient=is_transient_prefect_error, patience=patience.failed, wait_s=SHARD_POLL_S,
        sleep=sleep, clock=clock,
        on_retry=lambda exc, _: run_logger().warning(
            "Prefect API unavailable while %s (%s); trying again", what, type(exc).__name__
        ),
        gave_up=lambda exc: FatalRunError(f"the Prefect API did not answer for {patience.patience_s:.0f} s while {what}"),
    )  # fmt: skip
    patience.ok()
    return result


@dataclass
class ShardPolling:
    """The parent's side of its shards: how to start and read a run, how often, how patiently."""

    start: StartShard
    read_state: ReadState
    max_attempts: int
    patience: ApiPatience = field(default_factory=lambda: ApiPatience())
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    poll_s: float = SHARD_POLL_S
    deadline_s: float = DEFAULT_SHARD_DEADLINE_H * 3600  # the parent's wait at most, from its first poll

    async def start_next(self, run: ShardRun, what: str) -> None:
        """Start the next run of one shard (through the API, patiently) and wait for it afresh."""
        run_id = await patiently(lambda: self.start(run), self.patience, what, sleep=self.sleep, clock=self.clock)
        run.flow_run_ids.append(run_id)
        run.state, run.message, run.outcome = None, None, Next.WAIT

    async def read(self, run: ShardRun) -> None:
        """Read the state of a shard's current run and decide what comes next."""
        read = lambda: self.read_state(run.current)  # noqa: E731
        run.state, run.message = await patiently(read, self.patience, "reading shard states", sleep=self.sleep,
                                                 clock=self.clock)  # fmt: skip
        run.outcome = next_step(run.state, run.attempt, self.max_attempts)


async def wait_for_shards(runs: list[ShardRun], polling: ShardPolling) -> None:
    """Poll the shard runs until each is done or given up; start crashed ones again; stop at the deadline.

    A shard still not final at the deadline (a worker that died where no heartbeat automation marks
    it, a run stuck in a queue) is given up with a message saying so: the parent ends Failed instead
    of polling forever, and what the shards answered is in the ledger.
    """
    logger = run_logger()
    started = polling.clock()
    warn_at: float | None = started + UNCLAIMED_WARNING_S
    while waiting := [run for run in runs if run.outcome is Next.WAIT]:
        if polling.clock() - started >= polling.deadline_s:
            for run in waiting:
                run.outcome = Next.GIVE_UP
                run.message = f"not final after {polling.deadline_s / 3600:g} h (shard_deadline_h): no longer awaited"
            logger.error("%d shard run(s) not final at the deadline: %s", len(waiting),
                         ", ".join(str(run.index + 1) for run in waiting))  # fmt: skip
            return
        await polling.sleep(polling.poll_s)
        if warn_at is not None and polling.clock() > warn_at and any(run.state == "SCHEDULED" for run in waiting):
            logger.warning("shard runs still scheduled after %.0f s: is a cpu-pool worker running?", UNCLAIMED_WARNING_S)
            warn_at = None
        for run in waiting:
            await polling.read(run)
            if run.outcome is Next.RERUN:
                logger.warning("shard %d crashed (%s): starting it again, try %d of %d", run.index + 1,
                               run.message or "no message", run.attempt + 1, polling.max_attempts)  # fmt: skip
                await polling.start_next(run, "restarting a shard")
            elif run.outcome is not Next.WAIT:
                logger.info("shard %d %s: %s", run.index + 1, (run.state or "unknown").lower(), run.message or "")
