"""Fit a round's asks into the budget before anything is paid, in the order the groups come.

A unit the ledger already holds whole (asked in this round before a kill, or by another round) costs
nothing more and is always kept; the others are kept while the budget allows, group by group, so
round 0's held-out set comes first, then the seed, targeted questions before doubted images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vqa_distill.loop.budget import Budget, Spend
from vqa_distill.loop.plan import AskGroup
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.plan import plan_units


def cap_groups(
    groups: list[AskGroup], teacher: TeacherParams, folder: Path, ledger: Ledger, budget: Budget, spend: Spend
) -> tuple[list[AskGroup], int]:
    """The groups cut to what the budget allows; and how many units were left out for it."""
    allowed = budget.affordable(teacher, spend)
    kept_groups: list[AskGroup] = []
    left_out = 0
    for group in groups:
        plan = plan_units(group.units, group.params(teacher, folder), ledger)
        to_pay = {id(state.unit): state.unit for state in plan.jobs}
        kept = []
        for unit in group.units:
            if id(unit) not in to_pay:
                kept.append(unit)  # whole in the ledger: free
            elif allowed is None or allowed > 0:
                kept.append(unit)
                allowed = None if allowed is None else allowed - 1
            else:
                left_out += 1
        if kept:
            kept_groups.append(replace(group, units=kept))
    return kept_groups, left_out
