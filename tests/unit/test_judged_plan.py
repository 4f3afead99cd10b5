"""Which judge calls an evaluation makes: two orders per real pair, none for a degenerate answer."""

from __future__ import annotations

import pytest

from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.plan import (
    PAIR,
    RUBRIC,
    STUDENT_FIRST,
    STUDENT_SECOND,
    JudgeCall,
    free_verdict,
    pick_of,
    plan_judging,
)
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import MIN_SCORE
from vqa_distill.teacher.qa.pairwise import pairwise_prompt

JUDGE = TeacherParams(images="/data", out="/data/eval", model="judge-model", temperature=0.0, max_tokens=400)
QUESTION = "What colour is the tile?"
TEACHER = "The tile is a deep red with a chipped corner."
STUDENT = "The tile is red."
BASE = "It looks like a square object."
LOOP = "red red red red red red red red"


def _case(index: int = 0, *, reference: str = TEACHER, sha256: str = "a" * 64) -> EvalCase:
    return EvalCase(
        index=index,
        image=f"/data/tile_{index}.png",
        question=QUESTION,
        reference=reference,
        kind="detail",
        prompt="Describe the tile.",
        messages=[{"role": "user", "content": f"<image>{QUESTION}"}],
        sha256=sha256,
    )


def _pairs(calls: list[JudgeCall], opponent: str) -> list[JudgeCall]:
    return [c for c in calls if c.what == PAIR and c.subject == opponent]


@pytest.mark.parametrize(
    ("student_flaw", "opponent_flaw", "outcome"),
    [(None, None, None), ("loop", None, "loss"), (None, "empty", "win"), ("loop", "repeated", "tie")],
)
def test_free_verdict_truth_table(
    student_flaw: str | None, opponent_flaw: str | None, outcome: str | None
) -> None:
    verdict = free_verdict("base", student_flaw, opponent_flaw)
    if outcome is None:
        assert verdict is None  # two real answers: the judge decides
        return
    assert verdict is not None
    assert (verdict.opponent, verdict.outcome, verdict.picks) == ("base", outcome, (None, None))
    assert (
        not verdict.judged and "judge call" in verdict.reasons[0] and verdict.reasons[0] == verdict.reasons[1]
    )
    for flaw in (student_flaw, opponent_flaw):
        if flaw is not None:
            assert flaw in verdict.reasons[0]


def test_a_real_pair_is_asked_twice_with_the_answers_swapped() -> None:
    plan = plan_judging([_case()], {"student": [STUDENT]}, JUDGE, rubric=False)
    assert plan.free_verdicts == {} and plan.free_scores == {}
    first, second = _pairs(plan.calls, "teacher")
    assert len(plan.calls) == 2
    assert (first.order, second.order) == (STUDENT_FIRST, STUDENT_SECOND)
    assert first.request.prompt == pairwise_prompt(QUESTION, STUDENT, TEACHER)
    assert second.request.prompt == pairwise_prompt(QUESTION, TEACHER, STUDENT)
    assert first.request.key != second.request.key  # two ledger entries, two verdicts
    assert first.request.model == "judge-model" and first.request.sha256 == "a" * 64
    assert first.request.params["temperature"] == 0.0 and "response_format" in first.request.params
    assert first.label == "row 0 vs teacher (student first)"
    assert second.label == "row 0 vs teacher (student second)"


def test_with_base_and_rubric_every_call_is_planned_once() -> None:
    plan = plan_judging([_case()], {"student": [STUDENT], "base": [BASE]}, JUDGE, rubric=True)
    assert [(c.what, c.subject, c.order) for c in plan.calls] == [
        (PAIR, "teacher", STUDENT_FIRST),
        (PAIR, "teacher", STUDENT_SECOND),
        (PAIR, "base", STUDENT_FIRST),
        (PAIR, "base", STUDENT_SECOND),
        (RUBRIC, "student", 0),
        (RUBRIC, "base", 0),
    ]
    assert len({c.request.key for c in plan.calls}) == 6
    assert plan.calls[-1].label == "row 0 rubric base"
    assert BASE in plan.calls[-1].request.prompt and STUDENT in plan.calls[-2].request.prompt


def test_a_degenerate_student_answer_makes_no_pairwise_call_and_scores_the_lowest_mark() -> None:
    plan = plan_judging([_case()], {"student": [LOOP], "base": [BASE]}, JUDGE, rubric=True)
    assert [c for c in plan.calls if c.what == PAIR] == []  # it loses to the teacher and to the base for free
    assert {k: v.outcome for k, v in plan.free_verdicts.items()} == {
        (0, "teacher"): "loss",
        (0, "base"): "loss",
    }
    assert plan.free_scores == {(0, "student"): MIN_SCORE}
    assert [(c.what, c.subject) for c in plan.calls] == [(RUBRIC, "base")]  # the base's real answer is scored


def test_a_degenerate_base_answer_is_a_free_win_and_a_free_mark() -> None:
    plan = plan_judging([_case()], {"student": [STUDENT], "base": [""]}, JUDGE, rubric=True)
    assert plan.free_verdicts[(0, "base")].outcome == "win" and (0, "teacher") not in plan.free_verdicts
    assert plan.free_scores == {(0, "base"): MIN_SCORE}
    assert [(c.what, c.subject) for c in plan.calls] == [
        (PAIR, "teacher"),
        (PAIR, "teacher"),
        (RUBRIC, "student"),
    ]


def test_answers_are_read_by_case_index_and_a_copied_question_is_degenerate() -> None:
    cases = [_case(0), _case(1, sha256="b" * 64)]
    plan = plan_judging(cases, {"student": [STUDENT, QUESTION]}, JUDGE, rubric=False)
    assert {c.case for c in plan.calls} == {0}  # row 1's answer reads the question back: no call
    assert plan.free_verdicts[(1, "teacher")].outcome == "loss"
    assert "question copy" in plan.free_verdicts[(1, "teacher")].reasons[0]
    assert {c.what for c in plan.calls} == {PAIR}
    assert STUDENT in plan.calls[0].request.prompt


def test_the_same_texts_about_two_pictures_are_two_requests() -> None:
    cases = [_case(0, sha256="a" * 64), _case(1, sha256="b" * 64)]
    plan = plan_judging(cases, {"student": [STUDENT, STUDENT]}, JUDGE, rubric=False)
    assert len({c.request.key for c in plan.calls}) == 4


@pytest.mark.parametrize(
    ("order", "winner", "pick"),
    [
        (STUDENT_FIRST, "A", "student"),
        (STUDENT_FIRST, "B", "opponent"),
        (STUDENT_SECOND, "A", "opponent"),
        (STUDENT_SECOND, "B", "student"),
        (STUDENT_FIRST, "tie", "tie"),
        (STUDENT_SECOND, "tie", "tie"),
    ],
)
def test_pick_of_reads_the_winner_from_the_students_place(order: int, winner: str, pick: str) -> None:
    assert pick_of(order, winner) == pick
