"""Progress and cost where users look: two Prefect artifacts of the flow run, kept current while it runs.

``live_progress`` makes a ``Tally`` the run's (``vqa_distill.progress``), creates a progress artifact
(the bar on the run's Artifacts tab) and a markdown artifact (answered / cached / failed, spend so far
and projected, requests and tokens per minute against the limits, ETA), then updates both in place
from a background task every ``LIVE_UPDATE_S`` seconds when the tally moved, and once more at the end.
Nothing is sent per image: a 10,000-image run costs a few calls a minute. A parent that only watches
(a sharded run) sets ``poll``, which is called before each update to read the counts.

Progress is a display: an update that fails (a Prefect server restart) is logged and tried at the
next tick, never raised into the run. The artifacts go through an ``ArtifactSink`` so the cadence is
tested with a fake one and a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from vqa_distill import progress
from vqa_distill.errors import ConfigError
from vqa_distill.progress.text import Limits, done_line, progress_line, progress_markdown
from vqa_distill.teacher.run.summary import RunSummary
from vqa_distill.teacher.run_log import run_logger

LIVE_UPDATE_S = 12.0  # seconds between artifact updates: five a minute, whatever the run's rate
LIVE_UPDATE_ENV = "VQA_DISTILL_LIVE_UPDATE_S"  # another period in seconds (a demo, a test), at least MIN_UPDATE_S
MIN_UPDATE_S = 1.0  # a faster period would be an update per image again on a busy run
PERCENT = 100.0

Poll = Callable[[], None]  # reads counts into the tally; blocking (a ledger query), so run in a thread


@dataclass(frozen=True)
class LiveSpec:
    """What one kind of run calls its two artifacts, its title, and what its items are."""

    progress_key: str
    stats_key: str
    title: str
    unit: str  # "requests", "units", "lines", "run folders": the items the bar counts
    limits: Limits | None = None  # the endpoint's requests and tokens per minute (None: not held to any)


class ArtifactSink(Protocol):
    """Where the two artifacts go: Prefect's API in a run, a list in the tests."""

    async def create_progress(self, key: str, percent: float, description: str) -> UUID: ...
    async def update_progress(self, artifact_id: UUID, percent: float, description: str) -> None: ...
    async def create_markdown(self, key: str, markdown: str, description: str) -> UUID: ...
    async def update_markdown(self, artifact_id: UUID, markdown: str, description: str) -> None: ...


class PrefectArtifacts:
    """The artifacts of the current flow run, through Prefect's API; updates replace the data in place.

    Updating by id keeps one artifact per run (and the key's latest version) instead of a new version
    per update; the API's update also moves the key's "latest" copy when this artifact is it.
    """

    async def create_progress(self, key: str, percent: float, description: str) -> UUID:
        from prefect.artifacts import acreate_progress_artifact

        return await acreate_progress_artifact(percent, key=key, description=description)

    async def update_progress(self, artifact_id: UUID, percent: float, description: str) -> None:
        from prefect.artifacts import aupdate_progress_artifact

        await aupdate_progress_artifact(artifact_id, percent, description=description)

    async def create_markdown(self, key: str, markdown: str, description: str) -> UUID:
        from prefect.artifacts import acreate_markdown_artifact

        return await acreate_markdown_artifact(markdown, key=key, description=description)

    async def update_markdown(self, artifact_id: UUID, markdown: str, description: str) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        async with get_client() as client:
            await client.update_artifact(artifact_id, ArtifactUpdate(data=markdown, description=description))


def update_period(environ: Mapping[str, str] = os.environ) -> float:
    """Return the seconds between updates: ``LIVE_UPDATE_S``, or ``$VQA_DISTILL_LIVE_UPDATE_S`` when set."""
    text = environ.get(LIVE_UPDATE_ENV)
    if not text:
        return LIVE_UPDATE_S
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{LIVE_UPDATE_ENV} must be a number of seconds, got {text!r}") from None
    return max(seconds, MIN_UPDATE_S)


class LiveProgress:
    """One run's two artifacts and the tally behind them; ``updates`` counts the calls that went out."""

    def __init__(
        self, spec: LiveSpec, tally: progress.Tally, sink: ArtifactSink, *, every_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:  # fmt: skip
        self.spec, self.tally, self.sink = spec, tally, sink
        self.every_s, self.sleep = every_s, sleep
        self.poll: Poll | None = None
        self.updates = 0  # publishes that reached the API (creates included)
        self._ids: dict[str, UUID] = {}
        self._published = -1  # the tally version last shown
        self._failing = False
        self._busy = False
        self._stopping = False

    async def publish(self, state: str) -> None:
        """Show the tally now: create the artifacts the first time, then update them in place."""
        snapshot = self.tally.snapshot()
        percent = PERCENT if state == "finished" else round(snapshot.fraction * PERCENT, 1)
        line = f"{done_line(snapshot, self.spec.unit)} · {progress_line(snapshot, finished=state == 'finished')}"
        markdown = progress_markdown(snapshot, title=self.spec.title, unit=self.spec.unit, state=state,
                                     limits=self.spec.limits, every_s=self.every_s)  # fmt: skip
        version = self.tally.version
        try:
            if "progress" in self._ids:
                await self.sink.update_progress(self._ids["progress"], percent, line)
            else:
                self._ids["progress"] = await self.sink.create_progress(self.spec.progress_key, percent, line)
            if "stats" in self._ids:
                await self.sink.update_markdown(self._ids["stats"], markdown, line)
            else:
                self._ids["stats"] = await self.sink.create_markdown(self.spec.stats_key, markdown, line)
        except Exception as exc:  # a display must not fail the run; the next tick tries again
            if not self._failing:
                run_logger().warning("progress artifacts not updated (%s: %s); trying again", type(exc).__name__, exc)
            self._failing = True
            return
        self._failing = False
        self._published = version
        self.updates += 1

    async def read(self) -> None:
        """Read the counts into the tally when this run only watches (``poll``), and tell the CLI."""
        if self.poll is None:
            return
        try:
            await asyncio.to_thread(self.poll)
        except Exception as exc:  # the ledger may be away for a moment: show the last counts meanwhile
            run_logger().warning("progress not read (%s: %s)", type(exc).__name__, exc)
        progress.report(self.tally)

    async def tick(self) -> None:
        """Read the counts, then publish when anything moved since the last update."""
        await self.read()
        if self.tally.version != self._published:
            await self.publish("running")

    async def run(self) -> None:
        """Publish at once, then every ``every_s`` seconds until ``stop``."""
        while not self._stopping:
            self._busy = True
            try:
                await self.tick()
            finally:
                self._busy = False
            if self._stopping:
                return
            await self.sleep(self.every_s)

    async def stop(self, loop_task: asyncio.Task[None]) -> None:
        """End the loop: cancelled while it sleeps, awaited while it talks to the API (no twin artifact)."""
        self._stopping = True
        if not self._busy:
            loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task


@contextlib.asynccontextmanager
async def live_progress(
    spec: LiveSpec, *, sink: ArtifactSink | None = None, every_s: float | None = None,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[LiveProgress]:  # fmt: skip
    """Keep the run's progress and cost/ETA artifacts current while the block runs; update them once at the end."""
    tally = progress.Tally(clock=clock)
    live = LiveProgress(spec, tally, sink or PrefectArtifacts(), sleep=sleep,
                        every_s=every_s if every_s is not None else update_period())  # fmt: skip
    state = "finished"
    with progress.tallying(tally):
        loop_task = asyncio.create_task(live.run())
        try:
            yield live
        except BaseException:
            state = "stopped"
            raise
        finally:
            await live.stop(loop_task)
            await live.read()
            await live.publish(state)
            progress.report(tally)
            run_logger().info("%s: %d progress update(s) in %.0f s", spec.title, live.updates,
                              tally.snapshot().elapsed_s)  # fmt: skip


def count_summary(tally: progress.Tally, summary: RunSummary | None) -> None:
    """Count one finished run folder of a collect: its lines (at the price the summary says) as one item."""
    if summary is not None:
        tally.record("answered", count=summary.answered_now, prompt_tokens=summary.prompt_tokens,
                     completion_tokens=summary.completion_tokens, cost_usd=summary.estimated_cost_usd)  # fmt: skip
        tally.record("failed", count=summary.failed)
    paid = summary is not None and summary.answered_now > 0
    tally.advance(paid=paid, cost_usd=summary.estimated_cost_usd if summary is not None else 0.0)
