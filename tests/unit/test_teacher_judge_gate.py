"""The judge paces on its own: a judge of another model has its own gate, limits, headers and pace.

A 429 on the judge must neither slow the teacher nor lower its limit. Driven through the real client
over an in-process transport, on a virtual clock; and the run's resources are built as a flow builds them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from tests.support.fake_clock import FakeClock
from tests.unit.test_teacher_client_errors import Recorder, ask_through, completion, error_body, one_request
from vqa_distill.errors import TransientTeacherError
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.ratelimit.gate import RateGate
from vqa_distill.teacher.ratelimit.gates import Gates
from vqa_distill.teacher.run.resources import open_resources

TEACHER, JUDGE = "gpt-4o-mini", "gpt-4.1"


def judge_refuses(request: httpx2.Request) -> httpx2.Response:
    """The endpoint: the judge's model is out of allowance (a 429 and lower limits), the teacher's is not."""
    if b'"model":"gpt-4.1"' in request.content.replace(b" ", b""):
        return httpx2.Response(
            429, json=error_body("Rate limit reached for gpt-4.1"),
            headers={"retry-after": "3", "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "0"},
        )  # fmt: skip
    return httpx2.Response(200, json=completion())


def test_a_429_on_the_judge_neither_slows_the_teacher_nor_lowers_its_limit() -> None:
    clock = FakeClock()
    teacher, judge = RateGate(6000, 10_000_000, clock=clock), RateGate(6000, 10_000_000, clock=clock)
    gates = Gates(teacher, {JUDGE: judge})
    endpoint = Recorder({"/v1/chat/completions": judge_refuses})
    with pytest.raises(TransientTeacherError):
        ask_through(endpoint, one_request(JUDGE), gates)
    assert judge.pace == pytest.approx(0.7) and judge.limit("tokens") == 30_000  # the judge slows down...
    assert teacher.pace == 1.0 and teacher.limit("tokens") == 10_000_000  # ...the teacher does not
    started = clock.t
    answer = ask_through(endpoint, one_request(TEACHER), gates)
    assert answer.text and clock.t == started  # not held by the judge's 3-second Retry-After


def test_each_request_passes_its_own_models_gate() -> None:
    clock = FakeClock()
    teacher, judge = RateGate(6000, 10_000_000, clock=clock), RateGate(60, 10_000_000, clock=clock)
    gates = Gates(teacher, {JUDGE: judge})
    assert gates.for_model(TEACHER) is teacher and gates.for_model(JUDGE) is judge
    assert gates.for_model("anything else") is teacher
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(200, json=completion())})
    ask_through(endpoint, one_request(JUDGE), gates)
    started = clock.t
    ask_through(endpoint, one_request(TEACHER), gates)
    assert clock.t == started  # the teacher's 6,000 RPM is untouched by the judge's request
    ask_through(endpoint, one_request(JUDGE), gates)
    assert clock.t - started == pytest.approx(60 / 59)  # the judge's 60 RPM spaces its own requests


def resources_of(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Gates:
    """Build a run's resources as the generate flow does, and return its gates."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-resources")
    monkeypatch.delenv("VQA_DISTILL_REDIS_URL", raising=False)
    params = TeacherParams(images="i", out="o", prompts=["x"], questions=2, **values)

    async def build() -> Gates:
        resources = await open_resources(params, ledger=None)
        try:
            return resources.gate
        finally:
            await resources.aclose()

    return asyncio.run(build())


def test_a_judge_of_another_model_gets_its_own_gate_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    gates = resources_of(monkeypatch, model=TEACHER, judge_model=JUDGE, rpm=500, tpm=200_000, judge_tpm=30_000)
    judge = gates.for_model(JUDGE)
    assert judge is not gates.teacher
    assert (judge.limit("requests"), judge.limit("tokens")) == (500, 30_000)  # judge_rpm unset: the teacher's
    assert (gates.teacher.limit("requests"), gates.teacher.limit("tokens")) == (500, 200_000)


def test_a_judge_of_the_same_model_shares_the_teachers_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    gates = resources_of(monkeypatch, model=TEACHER, judge_model=TEACHER)
    assert gates.for_model(TEACHER) is gates.teacher and gates.all() == [gates.teacher]
