"""A round's asks cut to the budget before paying: what the ledger holds is free, each group costs its own count."""

from __future__ import annotations

import json
from pathlib import Path

from vqa_distill.loop.budget import Budget, Spend
from vqa_distill.loop.capping import cap_groups
from vqa_distill.loop.plan import AskGroup
from vqa_distill.teacher.ledger.records import KIND_QUESTIONS, Ledger, TeacherRecord
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.questions import QAUnit, answer_request, question_request

TEACHER = TeacherParams(images="/data", out="/data/loop", questions=2, prompts=["Describe the defects."])
NOTHING = Spend(usd=0.0, requests=0, dearest_usd=0.0, unpriced=0)
QUESTIONS = [
    "What colour is the tile?",
    "Where is the crack on the tile?",
    "How many chips does the tile have?",
]


def _unit(name: str, prompt: str = "Describe the defects.") -> QAUnit:
    return QAUnit(f"/data/{name}.png", f"{name}.png", name * 8, prompt)


def _group(name: str, units: list[QAUnit], count: int = 2) -> AskGroup:
    return AskGroup(name, name, units, "mixed", count)


def _paid(ledger: Ledger, unit: QAUnit, group: AskGroup, folder: Path, *, answers: int) -> None:
    """Record the unit's question set, and its first ``answers`` answers, as answered."""
    params = group.params(TEACHER, folder)
    questions = [{"kind": "conversation", "question": q} for q in QUESTIONS[: group.count]]
    requests = [(question_request(unit, params), json.dumps({"questions": questions}), KIND_QUESTIONS)]
    requests += [
        (answer_request(unit, q["question"], params), "An answer.", "answer") for q in questions[:answers]
    ]
    for request, answer, kind in requests:
        ledger.record(TeacherRecord(
            key=request.key, status=STATUS_ANSWERED, image_path=unit.image_path, rel_path=unit.rel_path,
            sha256=unit.sha256, prompt=request.prompt, system=request.system, model=request.model,
            params=request.params, answer=answer, finish_reason="stop", prompt_tokens=100, completion_tokens=10,
            kind=kind,
        ))  # fmt: skip


def _names(groups: list[AskGroup]) -> dict[str, list[str]]:
    return {group.name: [unit.rel_path for unit in group.units] for group in groups}


def test_units_are_kept_in_group_order_while_the_budget_holds_and_the_rest_counted(tmp_path: Path) -> None:
    groups = [
        _group("holdout", [_unit("a"), _unit("b")]),
        _group("seed", [_unit("c"), _unit("d"), _unit("e")]),
    ]
    with Ledger(tmp_path / "teacher") as ledger:
        kept, left_out = cap_groups(groups, TEACHER, tmp_path, ledger, Budget(usd=None, requests=10), NOTHING)
        unlimited, none_out = cap_groups(
            groups, TEACHER, tmp_path, ledger, Budget(usd=None, requests=None), NOTHING
        )
    assert _names(kept) == {"holdout": ["a.png", "b.png"], "seed": ["c.png"]} and left_out == 2  # 3 x 3 of 10
    assert unlimited == groups and none_out == 0


def test_a_unit_whole_in_the_ledger_is_kept_for_free_when_nothing_is_left(tmp_path: Path) -> None:
    seed = _group("seed", [_unit("a"), _unit("b"), _unit("c")])
    with Ledger(tmp_path / "teacher") as ledger:
        _paid(ledger, seed.units[1], seed, tmp_path, answers=2)
        spent = Spend(usd=0.0, requests=30, dearest_usd=0.0, unpriced=0)
        kept, left_out = cap_groups([seed], TEACHER, tmp_path, ledger, Budget(usd=None, requests=30), spent)
    assert _names(kept) == {"seed": ["b.png"]} and left_out == 2


def test_a_unit_asked_in_part_before_a_kill_costs_only_the_requests_it_lacks(tmp_path: Path) -> None:
    """Killed after a's question set and one answer: a lacks 1 request, b costs 3; 4 left fit both."""
    seed = _group("seed", [_unit("a"), _unit("b")])
    with Ledger(tmp_path / "teacher") as ledger:
        _paid(ledger, seed.units[0], seed, tmp_path, answers=1)
        spent = Spend(usd=0.0, requests=2, dearest_usd=0.0, unpriced=0)
        kept, left_out = cap_groups([seed], TEACHER, tmp_path, ledger, Budget(usd=None, requests=6), spent)
    assert _names(kept) == {"seed": ["a.png", "b.png"]} and left_out == 0


def test_a_group_asking_more_questions_than_the_teacher_costs_its_own_count(tmp_path: Path) -> None:
    """Targeted groups ask ``targeted_questions`` per unit: 1 + 5 requests each, not the teacher's 1 + 2."""
    targeted = _group(
        "targeted-detail", [_unit("a", "Ask more"), _unit("b", "Ask more"), _unit("c", "Ask more")], count=5
    )
    with Ledger(tmp_path / "teacher") as ledger:
        kept, left_out = cap_groups(
            [targeted], TEACHER, tmp_path, ledger, Budget(usd=None, requests=12), NOTHING
        )
    assert _names(kept) == {"targeted-detail": ["a.png", "b.png"]} and left_out == 1


def test_a_usd_budget_cuts_at_the_estimate_of_each_group(tmp_path: Path) -> None:
    paid = Spend(usd=1.0, requests=50, dearest_usd=0.01, unpriced=0)
    groups = [
        _group("targeted-detail", [_unit("a", "Ask more")], count=4),
        _group("doubt", [_unit("b"), _unit("c")]),
    ]
    with Ledger(tmp_path / "teacher") as ledger:  # $0.05 for a (5 requests), $0.03 for b, nothing left for c
        kept, left_out = cap_groups(groups, TEACHER, tmp_path, ledger, Budget(usd=1.085, requests=None), paid)
    assert _names(kept) == {"targeted-detail": ["a.png"], "doubt": ["b.png"]} and left_out == 1
