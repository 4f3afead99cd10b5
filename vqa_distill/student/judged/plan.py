"""Which judge calls an evaluation makes, and the verdicts it gets for free.

Per case and opponent (the teacher's reference, the base model's answer) two pairwise calls, the
student's answer shown first and then second: a judge's preference for a position cancels out, a
flip counts as a tie. Per local answer one rubric call (1-5). A degenerate answer (empty, a loop,
the question copied) is decided without a call: it loses to a real answer, ties with another
degenerate one, and scores the rubric's lowest mark. Every call is an ordinary ``TeacherRequest``,
so the ledger keys it by content and a second evaluation of the same rows pays for none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.results import PairVerdict, Pick
from vqa_distill.student.metrics import degenerate_reason
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import MIN_SCORE, judge_request
from vqa_distill.teacher.qa.pairwise import pairwise_request
from vqa_distill.teacher.qa.questions import QAUnit

PAIR, RUBRIC = "pair", "rubric"
STUDENT_FIRST, STUDENT_SECOND = 1, 2


@dataclass(frozen=True)
class JudgeCall:
    """One judge request about one case: a pairwise order against an opponent, or a rubric of one model's answer.

    ``order`` is STUDENT_FIRST or STUDENT_SECOND for a pair, 0 for a rubric; ``subject`` is the
    opponent of a pair, or the model a rubric scores.
    """

    case: int
    what: str
    subject: str
    order: int
    request: TeacherRequest

    @property
    def label(self) -> str:
        """How the task run is named: ``row 3 vs teacher (student first)``, ``row 3 rubric student``."""
        if self.what == RUBRIC:
            return f"row {self.case} rubric {self.subject}"
        place = "student first" if self.order == STUDENT_FIRST else "student second"
        return f"row {self.case} vs {self.subject} ({place})"


@dataclass(frozen=True)
class JudgePlan:
    """The calls to make, the pairs decided without one, and the rubric marks given without one."""

    calls: list[JudgeCall]
    free_verdicts: dict[tuple[int, str], PairVerdict]
    free_scores: dict[tuple[int, str], int]


def case_unit(case: EvalCase) -> QAUnit:
    """The case's image as a judge request is about it (its bytes are hashed into the key)."""
    return QAUnit(
        image_path=case.image, rel_path=Path(case.image).name, sha256=case.sha256 or "", prompt=case.prompt
    )


def plan_judging(
    cases: Sequence[EvalCase], answers: Mapping[str, Sequence[str]], judge: TeacherParams, *, rubric: bool
) -> JudgePlan:
    """Every call the evaluation needs for ``answers`` ("student", maybe "base", in case order)."""
    calls: list[JudgeCall] = []
    free_verdicts: dict[tuple[int, str], PairVerdict] = {}
    free_scores: dict[tuple[int, str], int] = {}
    for case in cases:
        unit = case_unit(case)
        student = answers["student"][case.index]
        opponents = {"teacher": case.reference}
        if "base" in answers:
            opponents["base"] = answers["base"][case.index]
        student_flaw = degenerate_reason(student, case.question)
        for opponent, other in opponents.items():
            free = free_verdict(opponent, student_flaw, degenerate_reason(other, case.question))
            if free is not None:
                free_verdicts[(case.index, opponent)] = free
                continue
            for order, (first, second) in (
                (STUDENT_FIRST, (student, other)),
                (STUDENT_SECOND, (other, student)),
            ):
                request = pairwise_request(unit, case.question, first, second, judge)
                calls.append(JudgeCall(case.index, PAIR, opponent, order, request))
        if not rubric:
            continue
        for model in ("student", "base"):
            if model not in answers:
                continue
            answer = answers[model][case.index]
            if degenerate_reason(answer, case.question) is not None:
                free_scores[(case.index, model)] = MIN_SCORE
                continue
            calls.append(
                JudgeCall(case.index, RUBRIC, model, 0, judge_request(unit, case.question, answer, judge))
            )
    return JudgePlan(calls, free_verdicts, free_scores)


def free_verdict(opponent: str, student_flaw: str | None, opponent_flaw: str | None) -> PairVerdict | None:
    """The verdict a degenerate answer decides without a judge: None when both answers are real."""
    if student_flaw is None and opponent_flaw is None:
        return None
    if student_flaw is not None and opponent_flaw is not None:
        why = f"both degenerate ({student_flaw}; {opponent_flaw}): no judge call"
        return PairVerdict(opponent, "tie", (None, None), (why, why))
    if student_flaw is not None:
        why = f"student answer degenerate ({student_flaw}): a loss without a judge call"
        return PairVerdict(opponent, "loss", (None, None), (why, why))
    why = f"{opponent} answer degenerate ({opponent_flaw}): a win without a judge call"
    return PairVerdict(opponent, "win", (None, None), (why, why))


def pick_of(order: int, winner: str) -> Pick:
    """Turn the judge's "A"/"B"/"tie" into the student's view, given where the student's answer stood."""
    if winner == "tie":
        return "tie"
    student_letter = "A" if order == STUDENT_FIRST else "B"
    return "student" if winner == student_letter else "opponent"
