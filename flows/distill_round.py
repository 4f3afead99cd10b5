"""The ``distill-round`` flow: one round of the loop, a linked subflow run of ``distill-loop``.

Teacher (this round's groups, cut to the budget before paying), dataset (the next version: the last
one plus this round's rows, never a held-out image), train (from the last round's checkpoint),
eval (the fixed held-out rows, then a probe of training rows that directs the next round).
"""

from __future__ import annotations

import random
from pathlib import Path

from prefect import flow, get_run_logger

from flows.distill_steps import (
    DATASET_DIR,
    EVAL_DIR,
    PROBE_DIR,
    images_by_sha,
    judge_round,
    round_groups,
    train_round,
)
from tasks.distill import ask_group, build_group_rows
from vqa_distill.dataset.build import TRAIN_FILE
from vqa_distill.loop.budget import Budget, spend_in, teacher_spend
from vqa_distill.loop.capping import cap_groups
from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.plan import REASON_HOLDOUT
from vqa_distill.loop.state import HOLDOUT_FILE, TEACHER_DIR, RoundRecord, load_state, round_dir
from vqa_distill.loop.targets import REASON_TARGETED, unit_mark
from vqa_distill.loop.versions import grow, read_version, write_version
from vqa_distill.teacher.ledger.records import Ledger

PROBE_FILE = "probe.jsonl"


@flow(name="distill-round", flow_run_name="round {number}", validate_parameters=False)
async def distill_round(params: DistillParams, number: int, out: str) -> RoundRecord:
    """Ask, grow the dataset, train and judge; returns the round's record (the loop saves it)."""
    logger, loop_out = get_run_logger(), Path(out)
    folder, state = round_dir(loop_out, number), load_state(loop_out)
    if state is None:
        raise RuntimeError(f"no loop state in {loop_out}: the distill-loop flow writes it before round 0")
    with Ledger(loop_out / TEACHER_DIR) as ledger:
        images = images_by_sha(params, ledger, loop_out)
        planned = round_groups(params, state, number, images, loop_out)
        budget = Budget(params.budget_usd, params.budget_requests)
        groups, left_out = cap_groups(planned, params.teacher, folder, ledger, budget, teacher_spend(ledger))
        logger.info("round %d asks %s; budget %s; %d unit(s) left out for it", number,
                    ", ".join(f"{g.name} {len(g.units)}" for g in groups) or "nothing", budget.describe(teacher_spend(ledger)),
                    left_out)  # fmt: skip
        for group in groups:
            await ask_group(group, params.teacher, folder, ledger)
        spend = teacher_spend(ledger)
    built = {g.name: build_group_rows(g, params.teacher, folder, loop_out / TEACHER_DIR) for g in groups}
    if number == 0:
        write_version(loop_out / HOLDOUT_FILE, built.pop(REASON_HOLDOUT, []))
    previous = read_version(round_dir(loop_out, number - 1) / DATASET_DIR / TRAIN_FILE) if number else []
    added = {g.reason: built.get(g.name, []) for g in groups if g.reason != REASON_HOLDOUT}
    focus_of = {prompt: focus for g in groups for prompt, focus in g.focus_of.items()}
    rows, counts = grow(previous, added, round_number=number, held_out=set(state.split.holdout), focus_of=focus_of)
    train_file = write_version(folder / DATASET_DIR / TRAIN_FILE, rows)
    probe_rows = random.Random(params.seed + number).sample(rows, min(len(rows), params.probe_rows))
    probe = write_version(folder / PROBE_FILE, probe_rows)
    checkpoint = await train_round(params, train_file, folder, state.last.checkpoint if state.last else None)
    probing = params.probe_rows > 0 and params.selection == "loop"  # the baseline targets nothing
    held = await judge_round(params, checkpoint, loop_out / HOLDOUT_FILE, probe if probing else None, folder)
    return RoundRecord(
        round=number, spend_usd=spend.usd, requests=spend.requests, rows_added=dict(counts), train_rows=len(rows),
        judge_spend_usd=spend_in([folder / EVAL_DIR, folder / PROBE_DIR]),
        checkpoint=checkpoint, dataset=str(train_file), cases=held.cases, degenerate=held.degenerate,
        asked_images=sorted({u.sha256 for g in groups for u in g.units}), left_out_units=left_out,
        targeted=[unit_mark(u) for g in groups if g.reason == REASON_TARGETED for u in g.units],
        eval_html=held.html_path, win_or_tie=held.win_or_tie_vs_teacher, win_or_tie_low=held.teacher_low,
        win_or_tie_high=held.teacher_high, rouge_l=held.rouge_l,
    )  # fmt: skip
