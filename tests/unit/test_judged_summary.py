"""An evaluation put together from the judge's records as the ledger returns them, and its numbers.

The plan is real (``plan_judging``); the records are what ``TeacherRecord.to_json`` holds for each call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from vqa_distill.student.judged.assemble import assemble
from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.plan import PAIR, RUBRIC, STUDENT_FIRST, JudgeCall, JudgePlan, plan_judging
from vqa_distill.student.judged.results import CaseResult
from vqa_distill.student.judged.summary import ALL, summarize
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_FAILED, STATUS_UNUSABLE
from vqa_distill.teacher.params import TeacherParams

JUDGE = TeacherParams(images="/data", out="/data/eval", model="judge-model", temperature=0.0, max_tokens=400)
TEACHER = "The tile is a deep red square with one chipped corner."
STUDENT = "The tile is red and square."
BASE = "A picture of something."
LOOP = "red red red red red red red red"
Records = list[dict[str, Any] | None]


def _case(index: int, kind: str, prompt: str) -> EvalCase:
    question = f"What does tile {index} look like?"
    return EvalCase(
        index=index,
        image=f"/data/tile_{index}.png",
        question=question,
        reference=TEACHER,
        kind=kind,
        prompt=prompt,
        messages=[{"role": "user", "content": f"<image>{question}"}],
        sha256=f"{index:064x}",
    )


def pair(winner: str, reason: str = "") -> dict[str, Any]:
    return {"status": STATUS_ANSWERED, "answer": json.dumps({"winner": winner, "reason": reason})}


def score(value: int) -> dict[str, Any]:
    return {
        "status": STATUS_ANSWERED,
        "answer": json.dumps({"score": value, "needs_image": True, "reason": ""}),
    }


FAILED: dict[str, Any] = {"status": STATUS_FAILED, "answer": None, "error_class": "APITimeoutError"}


def _records(plan: JudgePlan, answer: Callable[[JudgeCall], dict[str, Any] | None]) -> Records:
    return [answer(call) for call in plan.calls]


def _by(case: int, what: str, subject: str, order: int, table: dict[tuple[int, str, str, int], Any]) -> Any:
    return table.get((case, what, subject, order))


# Four cases, two kinds, two prompts. Against the teacher: a win (both orders), a flip (a tie), a loss
# (both orders), a degenerate student answer (a loss for free). Against the base: a win, a tie, one
# order failed and the other a win, a free loss.
CASES = [
    _case(0, "detail", "Describe the tile."),
    _case(1, "detail", "Describe the tile."),
    _case(2, "reasoning", "Is the tile damaged?"),
    _case(3, "reasoning", "Is the tile damaged?"),
]
ANSWERS = {"student": [STUDENT, STUDENT, STUDENT, LOOP], "base": [BASE] * 4}
VERDICTS: dict[tuple[int, str, str, int], Any] = {
    (0, PAIR, "teacher", 1): pair("A", "student first, better"), (0, PAIR, "teacher", 2): pair("B", "student second, better"),
    (1, PAIR, "teacher", 1): pair("A"), (1, PAIR, "teacher", 2): pair("A"),  # the first answer, whichever it is
    (2, PAIR, "teacher", 1): pair("B"), (2, PAIR, "teacher", 2): pair("A"),
    (0, PAIR, "base", 1): pair("A"), (0, PAIR, "base", 2): pair("B"),
    (1, PAIR, "base", 1): pair("tie"), (1, PAIR, "base", 2): pair("tie"),
    (2, PAIR, "base", 1): FAILED, (2, PAIR, "base", 2): pair("B"),
    (0, RUBRIC, "student", 0): score(5), (1, RUBRIC, "student", 0): score(4), (2, RUBRIC, "student", 0): score(3),
    (0, RUBRIC, "base", 0): score(2), (1, RUBRIC, "base", 0): None, (2, RUBRIC, "base", 0): FAILED,
    (3, RUBRIC, "base", 0): score(2),
}  # fmt: skip


@pytest.fixture
def results() -> list[CaseResult]:
    plan = plan_judging(CASES, ANSWERS, JUDGE, rubric=True)
    records = _records(plan, lambda c: _by(c.case, c.what, c.subject, c.order, VERDICTS))
    return assemble(CASES, ANSWERS, plan, records)


def test_both_orders_make_one_outcome_and_a_flip_is_a_tie(results: list[CaseResult]) -> None:
    teacher = [r.verdicts["teacher"] for r in results]
    assert [v.outcome for v in teacher] == ["win", "tie", "loss", "loss"]
    assert [v.picks for v in teacher] == [
        ("student", "student"),
        ("student", "opponent"),  # A then A: the judge liked the first place, not an answer
        ("opponent", "opponent"),
        (None, None),  # the loop lost without a call
    ]
    assert teacher[0].reasons == ("student first, better", "student second, better")
    assert not teacher[3].judged and "degenerate" in teacher[3].reasons[0]


def test_a_failed_record_leaves_its_order_out_and_the_other_decides(results: list[CaseResult]) -> None:
    base = [r.verdicts["base"] for r in results]
    assert [v.outcome for v in base] == ["win", "tie", "win", "loss"]
    assert base[2].picks == (None, "student") and base[2].reasons == ("", "")


def test_rubric_scores_free_marks_and_gaps(results: list[CaseResult]) -> None:
    assert [r.rubric for r in results] == [
        {"student": 5, "base": 2},
        {"student": 4, "base": None},  # never came back
        {"student": 3, "base": None},  # failed
        {"student": 1, "base": 2},  # the loop's free lowest mark
    ]
    assert [r.degenerate["student"] for r in results] == [None, None, None, "repeated"]
    assert results[0].answers == {"teacher": TEACHER, "student": STUDENT, "base": BASE}


def test_rates_overall_per_kind_and_per_prompt(results: list[CaseResult]) -> None:
    summary = summarize(results)
    assert summary.cases == 4 and summary.kinds == ["detail", "reasoning"]
    assert summary.prompts == ["Describe the tile.", "Is the tile damaged?"]
    assert set(summary.rates) == {
        ALL,
        "detail",
        "reasoning",
        "prompt: Describe the tile.",
        "prompt: Is the tile damaged?",
    }
    overall = summary.rates[ALL]["teacher"]
    assert (overall.wins, overall.ties, overall.losses, overall.n) == (1, 1, 2, 4)
    assert overall.describe() == "0.50 [0.15, 0.85] (n=4)"
    detail, reasoning = summary.rates["detail"]["teacher"], summary.rates["reasoning"]["teacher"]
    assert (detail.wins, detail.ties, detail.losses, detail.rate) == (1, 1, 0, 1.0)
    assert (reasoning.wins, reasoning.ties, reasoning.losses, reasoning.rate) == (0, 0, 2, 0.0)
    assert summary.rates["prompt: Is the tile damaged?"]["teacher"] == reasoning
    base = summary.rates[ALL]["base"]
    assert (base.wins, base.ties, base.losses) == (2, 1, 1)
    assert summary.rubric == {"student": 3.25, "base": 2.0}
    assert summary.degenerate == {"student": 1, "base": 0}
    assert summary.unjudged == {"teacher": 0, "base": 0}


def test_headline_format(results: list[CaseResult]) -> None:
    assert summarize(results).headline() == (
        "student vs teacher: win-or-tie 0.50 [0.15, 0.85] (n=4); vs base: 0.75 [0.30, 0.95] (n=4); degenerate: 1 of 4"
    )


def test_table_and_json_carry_every_group(results: list[CaseResult]) -> None:
    summary = summarize(results)
    rows = {row["group"]: row for row in summary.table()}
    assert rows[ALL]["vs teacher: win/tie/loss"] == "1/1/2" and rows[ALL]["rows"] == "4"
    assert rows["reasoning"]["vs base: win/tie/loss"] == "1/0/1"
    data = json.loads(json.dumps(summary.to_json()))
    assert data["rates"][ALL]["teacher"]["n"] == 4 and data["rates"]["detail"]["base"]["rate"] == 1.0


def test_pairs_the_judge_never_answered_are_unjudged_not_guessed() -> None:
    cases, answers = CASES[:2], {"student": [STUDENT, STUDENT]}
    plan = plan_judging(cases, answers, JUDGE, rubric=False)
    unusable = {"status": STATUS_UNUSABLE, "answer": '{"winner": "C"}'}
    verdicts = {(0, PAIR, "teacher", 1): pair("A"), (0, PAIR, "teacher", 2): pair("B"),
                (1, PAIR, "teacher", 1): FAILED, (1, PAIR, "teacher", 2): unusable}  # fmt: skip
    results = assemble(
        cases, answers, plan, _records(plan, lambda c: _by(c.case, c.what, c.subject, c.order, verdicts))
    )
    assert "teacher" in results[0].verdicts and results[1].verdicts == {}
    assert results[1].rubric == {"student": None}
    summary = summarize(results)
    assert summary.unjudged == {"teacher": 1} and "base" not in summary.rates[ALL]
    assert summary.rates[ALL]["teacher"].n == 1  # the unanswered pair is left out of the rate
    assert summary.headline() == "student vs teacher: win-or-tie 1.00 [0.21, 1.00] (n=1); degenerate: 0 of 2"


def test_an_answered_record_that_is_no_verdict_leaves_the_order_out() -> None:
    cases, answers = CASES[:1], {"student": [STUDENT]}
    plan = plan_judging(cases, answers, JUDGE, rubric=False)
    garbled = {"status": STATUS_ANSWERED, "answer": "A, clearly"}
    records: Records = [garbled if c.order == STUDENT_FIRST else pair("tie") for c in plan.calls]
    (result,) = assemble(cases, answers, plan, records)
    assert result.verdicts["teacher"].picks == (None, "tie") and result.verdicts["teacher"].outcome == "tie"


def test_records_must_match_the_plan_call_for_call() -> None:
    plan = plan_judging(CASES[:1], {"student": [STUDENT]}, JUDGE, rubric=False)
    with pytest.raises(ValueError):
        assemble(CASES[:1], {"student": [STUDENT]}, plan, [pair("A")])
