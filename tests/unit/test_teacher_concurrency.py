"""The concurrency limit: fixed holds; auto starts low, adds while latency holds, cuts on overload or queueing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_clock import FakeClock
from vqa_distill.errors import TeacherAuthError
from vqa_distill.teacher.answers.fanout import ask_all
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import DEFAULT_CONCURRENCY, TeacherParams
from vqa_distill.teacher.ratelimit.concurrency import AUTO_START, OVERLOAD_DECREASE, ConcurrencyLimit
from vqa_distill.teacher.ratelimit.gate import RateGate


def _answer(limit: ConcurrencyLimit, latency: float = 1.0, *, overloaded: bool = False, busy: int = 0) -> None:
    """Run one request through ``limit`` with ``busy`` others in flight meanwhile."""

    async def go() -> None:
        async with Busy(limit, busy), limit.slot() as slot:
            slot.done(None if overloaded else latency, overloaded=overloaded)

    asyncio.run(go())


class Busy:
    """Hold ``count`` slots of ``limit`` (requests in flight beside the one measured)."""

    def __init__(self, limit: ConcurrencyLimit, count: int) -> None:
        self._limit, self._count = limit, count
        self._slots: list[Any] = []

    async def __aenter__(self) -> None:
        for _ in range(self._count):
            manager = self._limit.slot()
            await manager.__aenter__()
            self._slots.append(manager)

    async def __aexit__(self, *exc: object) -> None:
        for manager in self._slots:
            await manager.__aexit__(None, None, None)


def _fill(limit: ConcurrencyLimit, latency: float = 1.0) -> None:
    """One answer with the limit in use (every other slot busy): the case that earns a raise."""
    _answer(limit, latency, busy=limit.limit - 1)


def test_auto_starts_low_and_adds_one_per_round_trip_while_latency_holds(caplog: pytest.LogCaptureFixture) -> None:
    limit = ConcurrencyLimit(32, adaptive=True, clock=FakeClock())
    assert limit.limit == AUTO_START
    with caplog.at_level(logging.INFO):
        for _ in range(AUTO_START + 1):  # a round trip's worth of answers
            _fill(limit)
    assert limit.limit == AUTO_START + 1
    assert "concurrency limit 4 -> 5" in caplog.text


def test_auto_never_exceeds_its_bound_nor_goes_below_one() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(6, adaptive=True, clock=clock)
    for _ in range(200):
        _fill(limit)
    assert limit.limit == 6 and limit.peak == 6
    for _ in range(20):
        clock.advance(1.0)
        _answer(limit, overloaded=True)
    assert limit.limit == 1


def test_an_idle_limit_earns_no_raise() -> None:
    limit = ConcurrencyLimit(32, adaptive=True, clock=FakeClock())
    for _ in range(50):
        _answer(limit)  # one in flight of four allowed: nothing says the server takes more
    assert limit.limit == AUTO_START


def test_an_overload_answer_halves_the_limit_once_per_burst() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(32, adaptive=True, start=16, clock=clock)

    async def burst() -> None:
        slots = [limit.slot() for _ in range(8)]
        entered = [await manager.__aenter__() for manager in slots]  # all sent before any answer
        clock.advance(1.0)
        for manager, slot in zip(slots, entered, strict=True):
            slot.done(overloaded=True)
            await manager.__aexit__(None, None, None)

    asyncio.run(burst())
    assert limit.limit == int(16 * OVERLOAD_DECREASE)
    assert limit.overloads == 8


def test_latency_beyond_the_tolerance_lowers_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(32, adaptive=True, start=10, clock=clock)
    _fill(limit, latency=1.0)
    clock.advance(1.0)
    with caplog.at_level(logging.INFO):
        _answer(limit, latency=5.0)
    assert limit.limit == 9
    assert "latency 5.00 s" in caplog.text


def test_a_fixed_limit_never_moves() -> None:
    limit = ConcurrencyLimit(8, adaptive=False, clock=FakeClock())
    for _ in range(5):
        _answer(limit, overloaded=True)
    _fill(limit)
    assert limit.limit == 8 and limit.describe() == "fixed 8"


def test_rate_limit_headers_open_the_limit_to_its_bound() -> None:
    in_flight = ConcurrencyLimit(24, adaptive=True, clock=FakeClock())
    gate = RateGate(500, 200_000, clock=FakeClock(), concurrency=in_flight)
    assert not gate.sends_rate_limit_headers
    gate.observe({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499"})
    assert gate.sends_rate_limit_headers
    assert in_flight.limit == 24 and not in_flight.adaptive


def test_the_limit_holds_requests_beyond_it() -> None:
    limit = ConcurrencyLimit(3, adaptive=False, clock=FakeClock())
    most = 0

    async def one() -> None:
        nonlocal most
        async with limit.slot():
            most = max(most, limit.in_flight)
            await asyncio.sleep(0)

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(10)))

    asyncio.run(many())
    assert most == 3 and limit.in_flight == 0


@pytest.mark.parametrize(
    ("given", "auto", "bound"),
    [({}, True, DEFAULT_CONCURRENCY), ({"concurrency": "auto"}, True, DEFAULT_CONCURRENCY), ({"concurrency": 7}, False, 7),
     ({"concurrency": 7, "concurrency_auto": True}, True, 7)],
)  # fmt: skip
def test_concurrency_auto_in_the_params(given: dict[str, Any], auto: bool, bound: int) -> None:
    params = TeacherParams(images="/i", out="/o", **given)
    assert (params.concurrency_auto, params.concurrency) == (auto, bound)


def test_a_spent_quota_stops_the_fan_out(tmp_path: Path) -> None:
    requests = [
        TeacherRequest(
            image_path=f"/i/{n}.png", rel_path=f"{n}.png", sha256=f"{n:064x}", prompt="p", system=None,
            model="gpt-4o-mini", params={},
        )
        for n in range(5)
    ]
    asked: list[str] = []

    async def ask(request: TeacherRequest) -> dict[str, Any]:
        asked.append(request.rel_path)
        raise TeacherAuthError("the account's quota is spent (insufficient_quota)")

    with Ledger(tmp_path / "run") as ledger, pytest.raises(TeacherAuthError):
        asyncio.run(ask_all(requests, ask, concurrency=1, flow_run_id="run", ledger=ledger))
    assert asked == ["0.png"]


def test_an_endpoint_is_taken_for_self_hosted_only_once_it_answered_without_headers() -> None:
    gate = RateGate(500, 200_000, clock=FakeClock())
    assert not gate.answers_without_headers  # nothing known before the first answer
    gate.observe({})
    asyncio.run(gate.settle(100, 100))
    assert gate.answers_without_headers
    gate.observe({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499"})
    assert not gate.answers_without_headers


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], (True, DEFAULT_CONCURRENCY, True, None, None)),
        (["--concurrency", "auto"], (True, DEFAULT_CONCURRENCY, True, None, None)),
        (["--concurrency", "12", "--no-rate-limits"], (False, 12, False, None, None)),
        (["--judge-rpm", "60", "--judge-tpm", "30000"], (True, DEFAULT_CONCURRENCY, True, 60, 30_000)),
    ],
)
def test_the_cli_flags_reach_the_params(flags: list[str], expected: tuple[Any, ...]) -> None:
    import argparse

    from vqa_distill.cli.teacher import add_generate_arguments, params_from_args

    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    params = params_from_args(parser.parse_args(["--images", "i", "--out", "o", "--prompt", "p", *flags]))
    got = (params.concurrency_auto, params.concurrency, params.rate_limits, params.judge_rpm, params.judge_tpm)
    assert got == expected


def test_concurrency_takes_a_number_or_auto() -> None:
    import argparse

    from vqa_distill.cli.teacher import add_generate_arguments

    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--concurrency", "many"])
