"""Put an evaluation together: answers, flags, overlap metrics, the judge's records, per case.

The judge's records come back as the ledger stores them (``TeacherRecord.to_json``): a record that
failed or is unusable leaves that order without a pick (one order still decides alone) and that
rubric without a score; such gaps are counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.plan import (
    PAIR,
    RUBRIC,
    STUDENT_FIRST,
    STUDENT_SECOND,
    JudgeCall,
    JudgePlan,
    pick_of,
)
from vqa_distill.student.judged.results import CaseResult, PairVerdict, Pick
from vqa_distill.student.metrics import combine_orders, degenerate_reason, exact_match, rouge_l_many
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED
from vqa_distill.teacher.qa.judge import Judgement, parse_judgement
from vqa_distill.teacher.qa.pairwise import parse_pairwise

Record = Mapping[str, Any]


def assemble(
    cases: Sequence[EvalCase],
    answers: Mapping[str, Sequence[str]],
    plan: JudgePlan,
    records: Sequence[Record | None],
) -> list[CaseResult]:
    """One CaseResult per case; ``records[i]`` is the outcome of ``plan.calls[i]`` (None: never came back)."""
    models = [m for m in ("student", "base") if m in answers]
    references = [case.reference for case in cases]
    rouge = {m: rouge_l_many([answers[m][c.index] for c in cases], references) for m in models}
    picks: dict[tuple[int, str], dict[int, tuple[Pick, str]]] = {}
    scores: dict[tuple[int, str], int] = dict(plan.free_scores)
    for call, record in zip(plan.calls, records, strict=True):
        _file(call, record, picks, scores)
    results = []
    for position, case in enumerate(cases):
        verdicts = {}
        for opponent in ("teacher", "base"):
            verdict = plan.free_verdicts.get((case.index, opponent)) or _verdict(
                opponent, picks.get((case.index, opponent))
            )
            if verdict is not None:
                verdicts[opponent] = verdict
        results.append(
            CaseResult(
                case=case,
                answers={"teacher": case.reference, **{m: answers[m][case.index] for m in models}},
                degenerate={m: degenerate_reason(answers[m][case.index], case.question) for m in models},
                rouge_l={m: round(rouge[m][position], 4) for m in models},
                exact={m: exact_match(answers[m][case.index], case.reference) for m in models},
                rubric={m: scores.get((case.index, m)) for m in models},
                verdicts=verdicts,
            )
        )
    return results


def _file(
    call: JudgeCall,
    record: Record | None,
    picks: dict[tuple[int, str], dict[int, tuple[Pick, str]]],
    scores: dict[tuple[int, str], int],
) -> None:
    """Read one judge record into the pick of its order, or the score of its rubric."""
    if record is None or record.get("status") != STATUS_ANSWERED:
        return
    text = str(record.get("answer") or "")
    if call.what == PAIR:
        verdict = parse_pairwise(text)
        if not isinstance(verdict, str):
            picks.setdefault((call.case, call.subject), {})[call.order] = (
                pick_of(call.order, verdict.winner),
                verdict.reason,
            )
    elif call.what == RUBRIC:
        judgement = parse_judgement(text)
        if isinstance(judgement, Judgement):
            scores[(call.case, call.subject)] = judgement.score


def _verdict(opponent: str, orders: dict[int, tuple[Pick, str]] | None) -> PairVerdict | None:
    """Both orders' picks made into one outcome; None when the judge answered neither."""
    if not orders:
        return None
    first, second = orders.get(STUDENT_FIRST), orders.get(STUDENT_SECOND)
    pick_first, pick_second = (first[0] if first else None), (second[0] if second else None)
    reasons = (first[1] if first else "", second[1] if second else "")
    return PairVerdict(opponent, combine_orders(pick_first, pick_second), (pick_first, pick_second), reasons)
