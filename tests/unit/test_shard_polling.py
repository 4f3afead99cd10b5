"""The parent's wait for its shards, with plain coroutines for the Prefect calls and a virtual clock."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.shards.polling import (
    ApiPatience,
    Next,
    ShardPolling,
    ShardRun,
    unfinished_message,
    wait_for_shards,
)


class FakeApi:
    """Shard runs whose states follow a script per run id; calls can fail while the 'server' is down."""

    def __init__(self, scripts: dict[int, list[list[str]]], down_for: int = 0) -> None:
        self.scripts = scripts  # shard index -> one list of states per run of that shard
        self.states: dict[str, list[str]] = {}
        self.started: list[str] = []
        self.down_for = down_for  # the next calls that fail with no answer at all

    def _maybe_down(self) -> None:
        if self.down_for:
            self.down_for -= 1
            raise httpx.ConnectError("connection refused")

    async def start(self, run: ShardRun) -> str:
        self._maybe_down()
        run_id = f"shard{run.index}-try{run.attempt + 1}"
        self.states[run_id] = list(self.scripts[run.index][run.attempt])
        self.started.append(run_id)
        return run_id

    async def read(self, run_id: str) -> tuple[str | None, str | None]:
        self._maybe_down()
        states = self.states[run_id]
        state = states.pop(0) if len(states) > 1 else states[0]
        return state, f"{run_id} {state.lower()}"


def polling(api: FakeApi, clock: FakeClock, max_attempts: int = 3, patience_s: float = 600.0) -> ShardPolling:
    return ShardPolling(start=api.start, read_state=api.read, max_attempts=max_attempts,
                        patience=ApiPatience(patience_s), sleep=clock.sleep, clock=clock.now)  # fmt: skip


async def run_all(api: FakeApi, clock: FakeClock, shards: int, **kwargs: float) -> list[ShardRun]:
    runs = [ShardRun(index) for index in range(shards)]
    waiting = polling(api, clock, **kwargs)  # type: ignore[arg-type]
    for run in runs:
        await waiting.start_next(run, "starting shards")
    await wait_for_shards(runs, waiting)
    return runs


async def test_a_crashed_shard_runs_again_and_a_completed_one_is_left_alone() -> None:
    api = FakeApi({0: [["RUNNING", "COMPLETED"]], 1: [["RUNNING", "CRASHED"], ["RUNNING", "RUNNING", "COMPLETED"]]})
    runs = await run_all(api, FakeClock(), shards=2)
    assert api.started == ["shard0-try1", "shard1-try1", "shard1-try2"]
    assert [(run.outcome, run.state, run.flow_run_ids) for run in runs] == [
        (Next.DONE, "COMPLETED", ["shard0-try1"]),
        (Next.DONE, "COMPLETED", ["shard1-try1", "shard1-try2"]),
    ]


async def test_a_shard_that_keeps_crashing_is_given_up_after_its_attempts() -> None:
    api = FakeApi({0: [["CRASHED"], ["CRASHED"]]})
    (run,) = await run_all(api, FakeClock(), shards=1, max_attempts=2)
    assert run.outcome is Next.GIVE_UP and run.flow_run_ids == ["shard0-try1", "shard0-try2"]


async def test_an_api_outage_within_patience_is_outlasted() -> None:
    clock = FakeClock()
    api = FakeApi({0: [["RUNNING", "COMPLETED"]]}, down_for=5)  # the start and the first reads get no answer
    (run,) = await run_all(api, clock, shards=1)
    assert run.outcome is Next.DONE and api.started == ["shard0-try1"]
    assert clock.t > 1000.0  # it waited (virtually) instead of failing


async def test_an_api_outage_beyond_patience_ends_the_run_with_one_clear_error() -> None:
    api = FakeApi({0: [["RUNNING"]]}, down_for=10_000)
    with pytest.raises(FatalRunError, match="did not answer for 10 s while starting shards"):
        await run_all(api, FakeClock(), shards=1, patience_s=10.0)


async def test_an_error_that_is_not_the_api_being_away_is_raised_at_once() -> None:
    async def broken(run: ShardRun) -> str:
        raise ValueError("a bug, not an outage")

    clock = FakeClock()
    waiting = ShardPolling(start=broken, read_state=FakeApi({}).read, max_attempts=1, sleep=clock.sleep, clock=clock.now)
    with pytest.raises(ValueError, match="a bug"):
        await waiting.start_next(ShardRun(0), "starting shards")
    assert clock.sleeps == []


async def test_a_shard_never_final_is_given_up_at_the_deadline_and_named() -> None:
    clock = FakeClock()
    api = FakeApi({0: [["RUNNING", "COMPLETED"]], 1: [["RUNNING"]]})  # shard 2's worker died unnoticed
    waiting = polling(api, clock)
    waiting.deadline_s = 3600.0
    runs = [ShardRun(0), ShardRun(1)]
    for run in runs:
        await waiting.start_next(run, "starting shards")
    await wait_for_shards(runs, waiting)
    assert runs[0].outcome is Next.DONE
    assert runs[1].outcome is Next.GIVE_UP and runs[1].state == "RUNNING"
    assert runs[1].message == "not final after 1 h (shard_deadline_h): no longer awaited"
    assert 3600.0 <= clock.t - 1000.0 < 3600.0 + 2 * waiting.poll_s
    assert unfinished_message(runs) == "shard 2 running: not final after 1 h (shard_deadline_h): no longer awaited"
