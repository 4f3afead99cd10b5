"""The ``distill-loop`` flow: rounds in which the student's mistakes and doubts choose what the teacher is asked.

Round 0 asks the seed images (and the held-out ones, judged every round and never trained on); each
later round asks targeted questions where the judge ranked the student below the teacher, and the
pool images the student is least sure about. Each round is a linked ``distill-round`` subflow run.
The loop stops at ``rounds``, when the budget allows nothing more, or when a round gains less than
``min_gain``; its state is on disk after every round, so a killed loop resumes where it stopped, and
one restarted with more rounds or a larger budget goes on (``vqa_distill/loop/stopping.py``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from flows.distill_round import distill_round
from vqa_distill.errors import ConfigError
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.loop.budget import Budget, teacher_spend
from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.report import loop_curve, round_rows
from vqa_distill.loop.split import split_images
from vqa_distill.loop.state import TEACHER_DIR, LoopState, RoundRecord, load_state, save_state
from vqa_distill.loop.stopping import stop_reason
from vqa_distill.student.plots import markdown_image
from vqa_distill.teacher.endpoint.pricing import price_of
from vqa_distill.teacher.ledger.records import Ledger

ROUNDS_KEY, CURVE_KEY = "distill-rounds", "distill-curve"


def start_state(params: DistillParams, out: Path) -> LoopState:
    """The saved state, or a new one with the split of the folder's images."""
    from flows.distill_steps import images_by_sha

    if params.budget_usd is not None and price_of(params.teacher.model) is None:
        raise ConfigError(f"--budget-usd needs a model with a known price; {params.teacher.model} has none: use --budget-requests")
    with Ledger(out / TEACHER_DIR) as ledger:
        shas = list(images_by_sha(params, ledger, out))
    state = load_state(out)
    if state is not None:
        return state.model_copy(update={"split": state.split.with_new(shas)})
    split = split_images(shas, holdout_share=params.holdout_share, seed_share=params.seed_share,
                         seed_count=params.seed_count, seed=params.seed)  # fmt: skip
    return LoopState(split=split)


def affordable_units(params: DistillParams, out: Path) -> int | None:
    """Units the budget still allows after what the loop's ledger says was paid (None: no budget)."""
    with Ledger(out / TEACHER_DIR) as ledger:
        return Budget(params.budget_usd, params.budget_requests).affordable(params.teacher, teacher_spend(ledger))


@flow(name="distill-loop", validate_parameters=True)
@fatal_errors_fail_the_run
async def distill_loop(params: DistillParams) -> list[RoundRecord]:
    """Distil in rounds within a budget; returns every round's record (also in <teacher.out>/loop.json).

    Args:
        params: The teacher (questions mode), the student, the rounds, budgets and selection sizes.
    """
    logger, out = get_run_logger(), Path(params.teacher.out)
    state = start_state(params, out)
    reason = stop_reason(params, state.rounds, affordable_units(params, out))
    if state.last is not None:  # weighed again: restarted with more rounds or a larger budget, it goes on
        state.last.stop_reason = reason
    save_state(out, state)
    logger.info("images: %d held out, %d seed, %d in the pool; %d round(s) done%s",
                len(state.split.holdout), len(state.split.seed), len(state.split.pool), len(state.rounds),
                f"; stop: {reason}" if reason else "")  # fmt: skip
    while reason is None:
        record = await distill_round(params, state.next_round, str(out))
        state.rounds.append(record)
        record.stop_reason = reason = stop_reason(params, state.rounds, affordable_units(params, out))
        save_state(out, state)
        await acreate_table_artifact(key=ROUNDS_KEY, table=round_rows(state.rounds), description="The loop, round by round")
        curve = markdown_image(loop_curve(state.rounds), alt="win-or-tie against spend", caption=str(out))
        await acreate_markdown_artifact(key=CURVE_KEY, markdown=curve, description="Win-or-tie rate against teacher spend")
        logger.info("round %d: win-or-tie %s, spend $%.4f%s", record.round, record.win_or_tie, record.spend_usd,
                    f"; stop: {record.stop_reason}" if record.stop_reason else "")  # fmt: skip
    return state.rounds
