"""A sharded run's parent reads its shards' progress from the ledger: one grouped count per update, none per image.

The shard runs count their own images in their own artifacts; the parent, which only waits, shows
the whole run. Each time its live reporter updates (a few times a minute), one ``GROUP BY`` over the
ledger says what the shard runs answered, failed and paid (their records name them), and what they
found answered already since the parent started (cache hits copied in with another run's id).
In questions mode the parent knows its image x prompt units, not the requests they will make, so
its total is an estimate from ``questions`` and the judge; the final update says 100 % either way.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, func, or_, select

from vqa_distill.progress import Tally
from vqa_distill.teacher.endpoint.pricing import estimate_cost
from vqa_distill.teacher.ledger.records import DONE_STATUSES, STATUS_FAILED, Ledger, utc_now
from vqa_distill.teacher.ledger.tables import RECORDS
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.live import LiveProgress
from vqa_distill.teacher.shards.polling import ShardRun


def expected_requests(pending: int, params: TeacherParams) -> int:
    """Return the requests ``pending`` items will make: one each, or in questions mode per unit its
    question set, then an answer (and a judgement) per question."""
    if params.questions is None:
        return pending
    per_question = 2 if params.judge_model else 1
    return pending * (1 + params.questions * per_question)


def sample_shards(tally: Tally, ledger: Ledger, since: str, run_ids: Collection[str]) -> None:
    """Set the tally from the ledger: the shard runs' answers (with tokens and cost) and failures, and the
    answers recorded since ``since`` under other runs' ids (cache hits)."""
    c = RECORDS.c
    ours = c.flow_run_id.in_(list(run_ids))
    query = (
        select(c.status, c.model, ours.label("ours"), func.count(), func.sum(c.prompt_tokens),
               func.sum(c.completion_tokens))
        .where(or_(ours, and_(c.updated_at >= since, c.status.in_(DONE_STATUSES))))
        .group_by(c.status, c.model, ours)
    )  # fmt: skip
    with ledger.store.read() as connection:
        rows = connection.execute(query).all()
    answered = cached = failed = prompt_tokens = completion_tokens = 0
    spend: float | None = 0.0
    for status, model, is_ours, count, prompt, completion in rows:
        if status not in (*DONE_STATUSES, STATUS_FAILED):
            continue
        if not is_ours:
            cached += count if status != STATUS_FAILED else 0  # another run's failure is not this run's
        elif status == STATUS_FAILED:
            failed += count
        else:
            answered += count
            prompt_tokens, completion_tokens = prompt_tokens + (prompt or 0), completion_tokens + (completion or 0)
            cost = estimate_cost(model, prompt or 0, completion or 0)
            spend = None if spend is None or cost is None else spend + cost
    tally.observe(
        done=min(answered + cached + failed, tally.total), answered=answered, cached=cached, failed=failed,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, spend_usd=spend,
    )  # fmt: skip


def watch_shards(live: LiveProgress, ledger: Ledger, runs: list[ShardRun], pending: int, params: TeacherParams) -> None:
    """Let the parent's live reporter read its shard runs' progress from the ledger before each update."""
    since = utc_now()
    live.tally.extend(expected_requests(pending, params))
    live.poll = lambda: sample_shards(live.tally, ledger, since, [run_id for run in runs for run_id in run.flow_run_ids])
