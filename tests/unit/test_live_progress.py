"""The live reporter's cadence, the fan-out's counting and the parent's ledger sampling: fake sink, fake clock.

No Prefect API is called: the reporter writes to a list, time is virtual, the ledger is a SQLite file.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.support.fake_clock import FakeClock
from tests.support.helpers import make_images, params_for
from vqa_distill import progress
from vqa_distill.progress.text import Limits
from vqa_distill.teacher.answers.fanout import ask_all
from vqa_distill.teacher.answers.outcomes import base_record
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, Ledger, TeacherRecord, utc_now
from vqa_distill.teacher.run.live import LiveSpec, live_progress, update_period
from vqa_distill.teacher.run.plan import plan_run
from vqa_distill.teacher.shards.sampling import expected_requests, sample_shards

SPEC = LiveSpec("teacher-progress", "teacher-cost-eta", "Teacher run", "requests", Limits(rpm=500, tpm=200_000))
EVERY_S = 12.0
GPT_4O_COST = 1000 * 2.50 / 1e6 + 100 * 10.00 / 1e6  # 1,000 prompt + 100 completion tokens at list price


class DrivenClock(FakeClock):
    """Virtual time the test moves; the reporter's sleep returns once the test has moved it far enough."""

    async def sleep(self, seconds: float) -> None:
        until = self.t + seconds
        while self.t < until:
            await asyncio.sleep(0)


class ListSink:
    """The two artifacts as a list of calls: (what, percent or markdown, description, virtual time)."""

    def __init__(self, clock: FakeClock, fail_first: int = 0) -> None:
        self.clock, self.fail_first = clock, fail_first
        self.calls: list[tuple[str, Any, str, float]] = []

    def _call(self, what: str, value: Any, description: str) -> UUID:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("the Prefect API is restarting")
        self.calls.append((what, value, description, self.clock.now()))
        return uuid4()

    async def create_progress(self, key: str, percent: float, description: str) -> UUID:
        return self._call("create progress", percent, description)

    async def update_progress(self, artifact_id: UUID, percent: float, description: str) -> None:
        self._call("update progress", percent, description)

    async def create_markdown(self, key: str, markdown: str, description: str) -> UUID:
        return self._call("create markdown", markdown, description)

    async def update_markdown(self, artifact_id: UUID, markdown: str, description: str) -> None:
        self._call("update markdown", markdown, description)

    def progress(self) -> list[tuple[float, float]]:
        """Return (virtual time, percent) of each progress call."""
        return [(t, value) for what, value, _, t in self.calls if what.endswith("progress")]


def run_busy(clock: DrivenClock, sink: ListSink, images: int, every_image_s: float) -> None:
    async def body() -> None:
        async with live_progress(SPEC, sink=sink, every_s=EVERY_S, clock=clock.now, sleep=clock.sleep):
            tally = progress.begin(images)
            for _ in range(images):
                clock.advance(every_image_s)
                tally.record("answered", prompt_tokens=1000, completion_tokens=100, cost_usd=GPT_4O_COST)
                tally.advance(paid=True, cost_usd=GPT_4O_COST)
                await asyncio.sleep(0)

    asyncio.run(body())


def test_a_busy_run_updates_a_few_times_a_minute_never_per_image() -> None:
    clock = DrivenClock()
    sink = ListSink(clock)
    run_busy(clock, sink, images=6000, every_image_s=0.1)  # ten minutes at ten images a second
    updates = sink.progress()
    assert 48 <= len(updates) <= 53  # 600 s / 12 s, the first one and the last one
    per_minute = max(sum(1 for t, _ in updates if start <= t < start + 60) for start, _ in updates)
    assert per_minute <= 60 / EVERY_S + 1
    percents = [percent for _, percent in updates]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert [what for what, *_ in sink.calls[:2]] == ["create progress", "create markdown"]
    assert sum(1 for what, *_ in sink.calls if what.startswith("create")) == 2  # then updated in place
    final = sink.calls[-1]
    assert final[0] == "update markdown" and final[1].startswith("### Teacher run: finished, 6,000 of 6,000 requests")
    assert "| spend so far | $21.00 |" in final[1] and "| ETA | done |" in final[1]
    rpm = re.search(r"\| requests per minute \| (\d+) of 500 allowed \|", final[1])
    assert rpm and int(rpm.group(1)) == pytest.approx(600, rel=0.02)  # ten a second, over the last minute


def test_an_idle_run_is_not_updated_until_its_end() -> None:
    clock = DrivenClock()
    sink = ListSink(clock)

    async def body() -> None:
        async with live_progress(SPEC, sink=sink, every_s=EVERY_S, clock=clock.now, sleep=clock.sleep):
            progress.begin(10)
            await asyncio.sleep(0)
            for _ in range(300):  # five minutes waiting for a slow endpoint: nothing changes
                clock.advance(1)
                await asyncio.sleep(0)

    asyncio.run(body())
    assert [t - 1000 for t, _ in sink.progress()] == [0, 300]  # created, then only the last update


def test_a_failing_api_is_logged_and_tried_again_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = DrivenClock()
    sink = ListSink(clock, fail_first=3)
    run_busy(clock, sink, images=600, every_image_s=0.1)
    assert sink.progress()[-1][1] == 100.0
    assert sum(1 for record in caplog.records if "progress artifacts not updated" in record.message) == 1


def test_a_watching_parent_reads_its_counts_before_each_update() -> None:
    clock = DrivenClock()
    sink = ListSink(clock)
    polls = itertools.count(1)

    async def body() -> None:
        async with live_progress(SPEC, sink=sink, every_s=EVERY_S, clock=clock.now, sleep=clock.sleep) as live:
            live.tally.extend(100)

            def poll() -> None:
                done = min(next(polls) * 10, 100)
                live.tally.observe(done=done, answered=done, cached=0, failed=0, prompt_tokens=done * 1000,
                                   completion_tokens=done * 100, spend_usd=done * GPT_4O_COST)  # fmt: skip

            live.poll = poll
            for _ in range(60):
                clock.advance(1)
                await asyncio.sleep(0.001)  # the poll runs in a worker thread

    asyncio.run(body())
    markdown = [value for what, value, *_ in sink.calls if what == "update markdown"]
    assert markdown and "| answered now (paid) | " in markdown[-1] and "finished" in markdown[-1]
    assert len(sink.progress()) <= 60 / EVERY_S + 3


def test_the_period_can_be_shortened_but_not_to_per_image() -> None:
    assert update_period({}) == 12.0
    assert update_period({"VQA_DISTILL_LIVE_UPDATE_S": "2"}) == 2.0
    assert update_period({"VQA_DISTILL_LIVE_UPDATE_S": "0.01"}) == 1.0


def _answer(request: TeacherRequest, run: str, tokens: tuple[int, int] = (1000, 100)) -> dict[str, Any]:
    record = base_record(request, 1, run, utc_now(), status=STATUS_ANSWERED)
    record.answer, record.prompt_tokens, record.completion_tokens = "a scratch", *tokens
    return asdict(record)


def test_the_fan_out_counts_paid_cached_and_failed_with_their_cost(tmp_path: Path) -> None:
    make_images(tmp_path / "images", 4)
    params = params_for(tmp_path / "images", tmp_path / "run", "http://127.0.0.1:9/v1", model="gpt-4o")
    with Ledger(params.out) as ledger:
        requests = plan_run(params, ledger).to_ask
        owner = {requests[0].key: "this-run", requests[1].key: "this-run", requests[2].key: "an-earlier-run"}

        async def ask(request: TeacherRequest) -> dict[str, Any]:
            if request.key not in owner:
                raise ConnectionError("the endpoint went away")
            return _answer(request, owner[request.key])

        tally = progress.Tally(clock=FakeClock().now)
        with progress.tallying(tally):
            outcome = asyncio.run(ask_all(requests, ask, concurrency=2, flow_run_id="this-run", ledger=ledger))
    snapshot = tally.snapshot()
    assert (snapshot.total, snapshot.done, snapshot.answered, snapshot.cached, snapshot.failed) == (4, 4, 2, 1, 1)
    assert len(outcome.fresh) == 2 and outcome.cached == 1 and len(outcome.failures) == 1
    assert snapshot.spend_usd == pytest.approx(2 * GPT_4O_COST)
    assert (snapshot.prompt_tokens, snapshot.completion_tokens) == (2000, 200)


def _stored(request_key: str, status: str, run: str, model: str = "gpt-4o") -> TeacherRecord:
    return TeacherRecord(key=request_key, status=status, image_path=f"/i/{request_key}.png",
                         rel_path=f"{request_key}.png", sha256="ab" * 32, prompt="p", system=None, model=model,
                         params={}, flow_run_id=run, prompt_tokens=1000, completion_tokens=100)  # fmt: skip


def test_the_parent_samples_its_shards_from_the_ledger_in_one_query(tmp_path: Path) -> None:
    with Ledger(tmp_path / "run") as ledger:
        ledger.record(_stored("old-cached", "answered", "an-old-run"))  # answered before the parent started
        ledger.record(_stored("old-failure", "failed", "an-old-run"))
        since = utc_now()
        ledger.record(_stored("k1", "answered", "shard-a"))
        ledger.record(_stored("k2", "unusable", "shard-a-try-2"))  # paid for all the same
        ledger.record(_stored("k3", "failed", "shard-b"))
        ledger.record(_stored("k4", "answered", "another-folder-run"))  # a cache hit copied in by a shard
        ledger.record(_stored("k5", "submitted", "shard-b"))  # not an outcome
        tally = progress.Tally(10, clock=FakeClock().now)
        sample_shards(tally, ledger, since, ["shard-a", "shard-a-try-2", "shard-b"])
    snapshot = tally.snapshot()
    assert (snapshot.done, snapshot.answered, snapshot.cached, snapshot.failed) == (4, 2, 1, 1)
    assert snapshot.spend_usd == pytest.approx(2 * GPT_4O_COST)
    assert snapshot.projected_usd == pytest.approx(2 * GPT_4O_COST + GPT_4O_COST * 6)


def test_a_parent_in_questions_mode_expects_each_units_questions_answers_and_judgements(tmp_path: Path) -> None:
    make_images(tmp_path / "images", 1)
    base = params_for(tmp_path / "images", tmp_path / "run", "http://127.0.0.1:9/v1")
    assert expected_requests(10, base) == 10
    assert expected_requests(10, base.model_copy(update={"questions": 3})) == 40
    assert expected_requests(10, base.model_copy(update={"questions": 3, "judge_model": "gpt-4o"})) == 70
