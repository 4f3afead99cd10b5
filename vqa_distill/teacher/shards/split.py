"""Sharded teacher runs, the plain part: which shard owns a request, when to start a shard again, what they did.

A run with ``shards`` > 1 is one parent ``generate`` flow run and one ``teacher-shard`` flow run per
part (docs/architecture.md, "Shards"). Everything here is decided without Prefect, so it is tested
with plain values (how the parent waits for its shards is ``polling.py``):

- **the split** is a pure function of the image's bytes (its sha256), so a re-run of a shard asks
  exactly its part again, the parent passes no key lists, and every prompt and question of one image
  lands in one shard (they share one decode);
- **the gathering**: what the shard runs paid for, found cached and failed, read back from the
  ledger (the source of truth), so the parent needs no shard's result and no shared result storage.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from pydantic import BaseModel

from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import DONE_STATUSES, STATUS_FAILED, Ledger
from vqa_distill.teacher.run.plan import RunPlan


def shard_of(sha256: str, shards: int) -> int:
    """Return the shard (0-based) that owns an image, from its content hash; the same on every machine."""
    if shards <= 1:
        return 0
    return int(sha256[:8], 16) % shards


def shard_plan(plan: RunPlan, shards: int, index: int) -> RunPlan:
    """Return the plan with only shard ``index``'s requests left to ask (answered counts are unchanged)."""
    to_ask = [request for request in plan.to_ask if shard_of(request.sha256, shards) == index]
    staged = plan.staged
    if staged is not None:
        jobs = [job for job in staged.jobs if shard_of(job.unit.sha256, shards) == index]
        staged = replace(staged, jobs=jobs)
    return replace(plan, to_ask=to_ask, staged=staged)


def pending_by_shard(plan: RunPlan, shards: int) -> dict[int, int]:
    """Return, for each shard with work left, how many requests (questions mode: image x prompt units) it has."""
    counts: dict[int, int] = {}
    shas = [request.sha256 for request in plan.to_ask]
    shas += [job.unit.sha256 for job in plan.staged.jobs] if plan.staged is not None else []
    for sha in shas:
        index = shard_of(sha, shards)
        counts[index] = counts.get(index, 0) + 1
    return dict(sorted(counts.items()))


def keys_of_shard(
    only_keys: Collection[str] | None, requests: Iterable[TeacherRequest], shards: int, index: int
) -> list[str] | None:
    """Return the part of ``only_keys`` that shard ``index`` may ask; None (ask everything) stays None.

    Keys the plan does not know (a generated question's answer) go to every shard: each shard still
    asks only its own images, so an unknown key costs nothing but a few bytes of parameters.
    """
    if only_keys is None:
        return None
    owner = {request.key: shard_of(request.sha256, shards) for request in requests}
    return [key for key in only_keys if owner.get(key, index) == index]


def gather_outcome(plan: RunPlan, ledger: Ledger, shard_run_ids: Collection[str]) -> FanOutOutcome:
    """Read back from the ledger what the shard runs did: the parent's view of its fan-out.

    A record names the flow run that last tried it: a shard run's answer was paid now (fresh), a
    shard run's failure is this run's failure, and a request the plan had to ask that another run
    answered (Prefect's result cache copied it in) is a cache hit. Records of shard runs the plan did
    not know (questions mode: answers to questions written during the run) count as discovered.
    """
    runs = set(shard_run_ids)
    planned = set(plan.keys)
    to_ask = {request.key for request in plan.to_ask}
    outcome = FanOutOutcome()
    for record in ledger.records():
        if record.flow_run_id in runs:
            if record.status == STATUS_FAILED:
                outcome.failures.append(record)
            elif record.status in DONE_STATUSES:
                outcome.fresh.append(record)
            else:
                continue
            outcome.discovered += record.key not in planned
        elif record.key in to_ask and record.status in DONE_STATUSES:
            outcome.cached += 1
    return outcome


class ShardSummary(BaseModel):
    """What one shard run did, in numbers: its result, shown in the UI (the parent reads the ledger)."""

    shard_index: int
    shards: int
    flow_run_id: str | None
    answered_now: int
    cached: int
    failed: int
    discovered: int = 0
    ledger_location: str | None = None  # where the shard recorded (``LedgerStore.location``): the parent compares it

    def describe(self) -> str:
        """Say in one log line what the shard did."""
        return f"answered now {self.answered_now}, cached {self.cached}, failed {self.failed}"


def shard_run_name(parent_name: str, index: int, shards: int, attempt: int) -> str:
    """Return a shard run's name as the UI lists it: the parent's name, the part, and the try after a crash."""
    name = f"{parent_name}-shard-{index + 1}-of-{shards}"
    return name if attempt <= 1 else f"{name}-try-{attempt}"
