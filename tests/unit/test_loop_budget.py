"""The loop's budget: what the ledger says was paid, and how many more units the rest allows, before paying."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqa_distill.loop.budget import (
    Budget,
    Spend,
    request_estimate,
    requests_per_unit,
    spend_in,
    teacher_spend,
)
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.endpoint.pricing import estimate_cost
from vqa_distill.teacher.ledger.records import KIND_JUDGE, Ledger, TeacherRecord
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_FAILED, STATUS_UNUSABLE
from vqa_distill.teacher.params import TeacherParams

TEACHER = TeacherParams(images="/data", out="/data/loop", questions=2)  # gpt-4o-mini, priced
NOTHING = Spend(usd=0.0, requests=0, dearest_usd=0.0, unpriced=0)


def _record(
    key: str, status: str, *, model: str = "gpt-4o-mini", prompt_tokens: int = 8_500
) -> TeacherRecord:
    return TeacherRecord(key=key, status=status, image_path=f"/data/{key}.png", rel_path=f"{key}.png", sha256=key,
                         prompt="p", system=None, model=model, params={}, prompt_tokens=prompt_tokens,
                         completion_tokens=40)  # fmt: skip


def test_a_unit_makes_a_question_set_an_answer_per_question_and_a_judgement_each_with_a_judge() -> None:
    assert requests_per_unit(TEACHER) == 3
    assert requests_per_unit(TEACHER.model_copy(update={"questions": 4, "judge_model": "gpt-4o"})) == 9


def test_spend_counts_what_was_billed_answered_or_unusable_never_a_failure(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.record(_record("a", STATUS_ANSWERED))
        ledger.record(_record("b", STATUS_UNUSABLE, prompt_tokens=20_000))
        ledger.record(_record("c", STATUS_FAILED))
        ledger.record(_record("d", STATUS_ANSWERED, model="my-local-model"))
        spend = teacher_spend(ledger)
    a, b = estimate_cost("gpt-4o-mini", 8_500, 40), estimate_cost("gpt-4o-mini", 20_000, 40)
    assert a is not None and b is not None
    assert (spend.requests, spend.unpriced) == (3, 1)
    assert spend.usd == pytest.approx(a + b) and spend.dearest_usd == pytest.approx(b)


@pytest.mark.parametrize(
    ("limit", "paid", "units"),
    [(None, 5, None), (20, 12, 2), (20, 18, 0), (18, 18, 0), (18, 30, 0), (9, 0, 3)],
)
def test_a_request_budget_allows_whole_units_and_nothing_once_spent(
    limit: int | None, paid: int, units: int | None
) -> None:
    spend = Spend(usd=0.01, requests=paid, dearest_usd=0.001, unpriced=0)
    assert Budget(usd=None, requests=limit).affordable(TEACHER, spend) == units


def test_the_first_guess_before_any_usage_is_no_cheaper_than_any_picture_the_teacher_may_send() -> None:
    """gpt-4o-mini bills 2,833 + 5,667 a tile: a 4:3 photo prepared to 1536x1536 px is 4 tiles (25,501 tokens)."""
    guess = request_estimate(TEACHER, NOTHING)
    assert guess is not None
    spec = model_spec(TEACHER.model)
    for width, height in [(64, 48), (1773, 1330), (1536, 1536), (2508, 940), (940, 2508), (3072, 768)]:
        assert width * height <= TEACHER.max_pixels
        cost = estimate_cost(TEACHER.model, spec.image_tokens(width, height) + 200, TEACHER.max_tokens or 0)
        assert cost is not None and guess >= cost, (width, height, guess, cost)


def test_a_usd_budget_plans_at_the_first_guess_then_at_the_dearest_request_paid() -> None:
    guess = request_estimate(TEACHER, NOTHING)
    assert guess is not None
    budget = Budget(usd=10 * 3 * guess + guess, requests=None)  # ten units and a third of one
    assert budget.affordable(TEACHER, NOTHING) == 10
    paid = Spend(usd=0.5, requests=40, dearest_usd=0.01, unpriced=0)
    assert request_estimate(TEACHER, paid) == 0.01
    assert Budget(usd=0.5 + 0.3 + 0.001, requests=None).affordable(TEACHER, paid) == 10
    assert Budget(usd=0.5, requests=None).affordable(TEACHER, paid) == 0  # spent to the limit
    assert Budget(usd=0.4, requests=None).affordable(TEACHER, paid) == 0  # past it


def test_both_budgets_hold_the_smaller_and_an_unpriced_model_affords_nothing_by_usd() -> None:
    spend = Spend(usd=0.0, requests=0, dearest_usd=0.0, unpriced=0)
    assert Budget(usd=100.0, requests=7).affordable(TEACHER, spend) == 2
    local = TEACHER.model_copy(update={"model": "my-local-model"})
    assert Budget(usd=100.0, requests=None).affordable(local, spend) == 0
    assert Budget(usd=None, requests=7).affordable(local, spend) == 2


def test_an_allowance_books_units_of_any_size_until_either_budget_is_spent() -> None:
    allowance = Budget(usd=1.0, requests=10).allowance(
        TEACHER, Spend(usd=0.5, requests=2, dearest_usd=0.05, unpriced=0)
    )
    assert (allowance.requests, allowance.usd, allowance.usd_per_request) == (8, 0.5, 0.05)
    assert allowance.take(5)  # 5 requests, $0.25
    assert not allowance.take(4)  # 3 requests left
    assert allowance.take(3)  # $0.15 of the $0.25 left
    assert not allowance.take(1) and allowance.requests == 0
    dollars = Budget(usd=0.2, requests=None).allowance(
        TEACHER, Spend(usd=0.0, requests=1, dearest_usd=0.05, unpriced=0)
    )
    assert dollars.take(3) and not dollars.take(2) and dollars.take(1) and not dollars.take(1)


def test_the_judges_spend_is_read_from_the_evaluations_own_ledgers(tmp_path: Path) -> None:
    record = _record("j", STATUS_ANSWERED, prompt_tokens=9_000)
    record.kind = KIND_JUDGE
    with Ledger(tmp_path / "eval") as ledger:
        ledger.record(record)
    cost = estimate_cost("gpt-4o-mini", 9_000, 40)
    assert cost is not None
    assert spend_in([tmp_path / "eval", tmp_path / "probe"]) == pytest.approx(cost)
    assert not (tmp_path / "probe").exists()  # a folder without a ledger is not given one
