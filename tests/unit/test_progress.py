"""The progress tally and its words, with literal figures and a fake clock: no Prefect, no server."""

from __future__ import annotations

import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill import progress
from vqa_distill.progress import Tally
from vqa_distill.progress.text import Limits, duration, progress_line, progress_markdown, usd

# gpt-4o's list price: $2.50 per 1M prompt tokens, $10.00 per 1M completion tokens.
COST = 1000 * 2.50 / 1e6 + 100 * 10.00 / 1e6  # 1,000 + 100 tokens: $0.0035


def three_outcomes(clock: FakeClock) -> Tally:
    """Ten items; one answered (paid), one cached, one failed, two seconds apart."""
    tally = Tally(10, clock=clock.now)
    clock.advance(2)
    tally.record("answered", prompt_tokens=1000, completion_tokens=100, cost_usd=COST)
    tally.advance(paid=True, cost_usd=COST)
    clock.advance(2)
    tally.record("cached")
    tally.advance()
    clock.advance(2)
    tally.record("failed")
    tally.advance()
    return tally


def test_the_tally_counts_spends_rates_and_projects() -> None:
    snapshot = three_outcomes(FakeClock()).snapshot()
    assert (snapshot.done, snapshot.left, snapshot.answered, snapshot.cached, snapshot.failed) == (3, 7, 1, 1, 1)
    assert snapshot.spend_usd == pytest.approx(0.0035)
    assert snapshot.projected_usd == pytest.approx(0.0035 + 0.0035 * 7)  # mean cost of a paid item x items left
    assert snapshot.requests_per_min == pytest.approx(20.0)  # answered + failed: 2 requests in 6 s
    assert snapshot.tokens_per_min == pytest.approx(11_000.0)  # 1,100 tokens in 6 s
    assert snapshot.items_per_min == pytest.approx(30.0)
    assert snapshot.eta_s == pytest.approx(14.0)  # 7 left at 30 a minute
    assert snapshot.elapsed_s == pytest.approx(6.0)


def test_the_rates_and_eta_follow_the_last_minute_not_the_start() -> None:
    clock = FakeClock()
    tally = Tally(100, clock=clock.now)
    for _ in range(30):  # a fast start: 30 items in 3 s (cache hits)
        clock.advance(0.1)
        tally.record("cached")
        tally.advance()
    clock.advance(97)  # then nothing for a while
    for _ in range(6):  # then one item every 5 s
        clock.advance(5)
        tally.record("answered", prompt_tokens=10, completion_tokens=0, cost_usd=0.01)
        tally.advance(paid=True, cost_usd=0.01)
    snapshot = tally.snapshot()
    assert snapshot.items_per_min == pytest.approx(6.0)  # 6 in the last 60 s, the burst is out of the window
    assert snapshot.requests_per_min == pytest.approx(6.0)  # cache hits are no requests
    assert snapshot.eta_s == pytest.approx(64 / 6 * 60)
    assert snapshot.projected_usd == pytest.approx(0.06 + 0.01 * 64)  # cache hits cost nothing, paid ones 0.01
    clock.advance(120)
    idle = tally.snapshot()
    assert idle.items_per_min == 0.0 and idle.eta_s is None


def test_an_unknown_price_makes_spend_and_projection_unknown_not_zero() -> None:
    tally = Tally(4, clock=FakeClock().now)
    tally.record("answered", prompt_tokens=10, completion_tokens=10, cost_usd=None)
    tally.advance(paid=True, cost_usd=None)
    snapshot = tally.snapshot()
    assert snapshot.spend_usd is None and snapshot.projected_usd is None
    assert progress_line(snapshot).startswith("spend n/a of ~n/a (no price for the model)")


def test_a_polled_tally_projects_per_request_and_skips_unchanged_counts() -> None:
    clock = FakeClock()
    tally = Tally(100, clock=clock.now)
    counts = {"answered": 20, "cached": 5, "failed": 1, "prompt_tokens": 20_000, "completion_tokens": 2_000}
    clock.advance(30)
    tally.observe(done=26, spend_usd=0.07, **counts)
    version = tally.version
    tally.observe(done=26, spend_usd=0.07, **counts)  # a poll that found nothing new
    assert tally.version == version
    snapshot = tally.snapshot()
    assert snapshot.projected_usd == pytest.approx(0.07 + 0.07 / 20 * 74)
    assert snapshot.items_per_min == pytest.approx(52.0)  # 26 in 30 s


def test_words_for_dollars_and_durations() -> None:
    assert [usd(None), usd(0.0), usd(0.01234), usd(1234.5)] == ["n/a", "$0.0000", "$0.0123", "$1,234.50"]
    assert [duration(None), duration(45), duration(60), duration(725), duration(7500)] == [
        "estimating", "45 s", "1 min", "12 min 5 s", "2 h 05 min",
    ]  # fmt: skip


def test_one_line_for_the_bar_and_the_artifact_and_a_table_for_the_ui() -> None:
    snapshot = three_outcomes(FakeClock()).snapshot()
    assert progress_line(snapshot) == "spend $0.0035 of ~$0.0280 · ETA 14 s"
    markdown = progress_markdown(snapshot, title="Teacher run", unit="requests", state="running",
                                 limits=Limits(rpm=500, tpm=200_000), every_s=12)  # fmt: skip
    assert markdown.startswith("### Teacher run: running, 3 of 10 requests (30.0%)")
    for row in (
        "| answered now (paid) | 1 |", "| cached (no call, no cost) | 1 |", "| failed | 1 |",
        "| spend so far | $0.0035 |", "| projected total | $0.0280 |",
        "| requests per minute | 20 of 500 allowed |", "| tokens per minute | 11,000 of 200,000 allowed |",
        "| ETA | 14 s |", "| elapsed | 6 s |",
    ):  # fmt: skip
        assert row in markdown
    assert "Updated every 12 s" in markdown
    nothing_paid = Tally(5, clock=FakeClock().now).snapshot()
    assert progress_line(nothing_paid) == "spend $0.0000 of ~after the first paid answer · ETA estimating"
    not_planned = Tally(clock=FakeClock().now).snapshot()  # the reporter starts before the plan is made
    assert (not_planned.fraction, not_planned.eta_s, not_planned.projected_usd) == (0.0, None, None)
    assert progress_line(not_planned, finished=True) == "spend $0.0000 of ~$0.0000 · ETA done"  # nothing to ask


def test_the_seam_hands_out_the_reporters_tally_and_tells_listeners() -> None:
    heard: list[int] = []

    def listener(tally: Tally) -> None:
        heard.append(tally.done)

    assert progress.begin(3) is not progress.begin(3)  # no reporter: each fan-out counts on its own
    shared = Tally()
    progress.add_listener(listener)
    try:
        with progress.tallying(shared):
            tally = progress.begin(4)
            tally.advance()
            progress.report(tally)
        assert tally is shared and shared.total == 4 and heard == [1]
        assert progress.begin(1) is not shared  # the block ended
    finally:
        progress.remove_listener(listener)
