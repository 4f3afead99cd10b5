"""Fit a round's asks into the budget before anything is paid, in the order the groups come.

A unit the ledger already holds whole (asked in this round before a kill, or by another round) costs
nothing more and is always kept; one it holds in part costs only the requests it still lacks; the
others are kept while the budget allows, group by group, each at its own count of questions, so
round 0's held-out set comes first, then the seed, targeted questions before doubted images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vqa_distill.loop.budget import Budget, Spend, requests_per_unit
from vqa_distill.loop.plan import AskGroup
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.plan import UnitState, is_done, plan_units


def requests_left(state: UnitState, params: TeacherParams) -> int:
    """The most requests a unit can still make: all of them before its question set is in, else what its items lack."""
    if not is_done(state.questions):
        return requests_per_unit(params)
    judged = 1 if params.judge_model else 0
    left = 0
    for item in state.items:
        if item.repeats is not None:
            continue  # a near repeat is never asked
        if not is_done(item.answer):
            left += 1 + judged
        elif item.judge_request is not None and not is_done(item.judgement):
            left += 1
    return left


def cap_groups(
    groups: list[AskGroup], teacher: TeacherParams, folder: Path, ledger: Ledger, budget: Budget, spend: Spend
) -> tuple[list[AskGroup], int]:
    """The groups cut to what the budget allows; and how many units were left out for it."""
    allowance = budget.allowance(teacher, spend)
    kept_groups: list[AskGroup] = []
    left_out = 0
    for group in groups:
        params = group.params(teacher, folder)
        plan = plan_units(group.units, params, ledger)
        to_pay = {id(state.unit): requests_left(state, params) for state in plan.jobs}
        kept = []
        for unit in group.units:
            if id(unit) not in to_pay or allowance.take(to_pay[id(unit)]):
                kept.append(unit)  # whole in the ledger (free), or within the budget
            else:
                left_out += 1
        if kept:
            kept_groups.append(replace(group, units=kept))
    return kept_groups, left_out
