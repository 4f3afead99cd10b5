"""Sharded teacher runs, the plain part: which shard owns a request, when to start a shard again, what they did.

A run with ``shards`` > 1 is one parent ``generate`` flow run and one ``teacher-shard`` flow run per
part (docs/architecture.md, "Shards"). Everything here is decided without Prefect, so it is tested
with plain values:

- **the split** is a pure function of the image's bytes (its sha256), so a re-run of a shard asks
  exactly its part again, the parent passes no key lists, and every prompt and question of one image
  lands in one shard (they share one decode);
- **the re-run decision** per shard run state: wait, done, start again (crashed), or give up;
- **patience with the API**: a Prefect server restart mid-run must not fail the waiting parent;
- **the gathering**: what the shard runs paid for, found cached and failed, read back from the
  ledger (the source of truth), so the parent needs no shard's result and no shared result storage.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

from pydantic import BaseModel

from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import DONE_STATUSES, STATUS_FAILED, Ledger
from vqa_distill.teacher.run.plan import RunPlan

SHARD_POLL_S = 2.0  # how often the parent reads its shard runs' states
API_PATIENCE_S = 600.0  # how long the parent keeps polling an unreachable Prefect API (a server restart)
SHARD_DEPLOYMENT = "teacher-shard/teacher-shard"


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


class Next(enum.Enum):
    """What the parent does about one shard run after reading its state."""

    WAIT = "wait"  # scheduled, pending, running, paused: not final yet
    DONE = "done"  # completed, or failed with its failures recorded: gathered, never re-run
    RERUN = "rerun"  # crashed (its process or machine died): start a new run; the ledger makes it pay less
    GIVE_UP = "give up"  # crashed too often, or cancelled by a person: its unasked requests stay unasked


WAITING_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"})


def next_step(state_type: str | None, attempt: int, max_attempts: int) -> Next:
    """Decide about a shard run in ``state_type`` on its ``attempt``-th run (1-based) of ``max_attempts``.

    CRASHED is what the worker reports when the run's process dies, and what the heartbeat automation
    (ops/deploy.py) sets when a whole worker machine went silent: both are infrastructure, so the
    shard is started again. FAILED means requests failed after their retries: re-running would pay
    for the same refusals, so they are reported instead. CANCELLED is a person's decision.
    """
    if state_type is None or state_type in WAITING_STATES:
        return Next.WAIT
    if state_type in {"COMPLETED", "FAILED"}:
        return Next.DONE
    if state_type == "CRASHED" and attempt < max_attempts:
        return Next.RERUN
    return Next.GIVE_UP


@dataclass
class ShardRun:
    """One shard's runs so far: the current run, how many were started, and how it ended."""

    index: int
    flow_run_ids: list[str] = field(default_factory=list)
    state: str | None = None
    message: str | None = None
    outcome: Next = Next.WAIT

    @property
    def attempt(self) -> int:
        """Return how many runs of this shard were started."""
        return len(self.flow_run_ids)

    @property
    def current(self) -> str:
        """Return the id of the latest run of this shard."""
        return self.flow_run_ids[-1]


def gave_up(runs: Iterable[ShardRun]) -> list[ShardRun]:
    """Return the shards that ended without all their requests asked (crashed too often or cancelled)."""
    return [run for run in runs if run.outcome is Next.GIVE_UP]


def unfinished_message(runs: Iterable[ShardRun]) -> str:
    """Say which shards did not complete and why ('' when all did): a parent with one is Failed.

    A shard that failed because requests failed says so and its failures are counted; one stopped
    by a fatal error (a refused key) or given up would otherwise leave requests silently unasked.
    """
    return "; ".join(
        f"shard {run.index + 1} {(run.state or 'unknown').lower()}"
        + (f" after {run.attempt} runs" if run.attempt > 1 else "")
        + f": {run.message or 'no message'}"
        for run in runs
        if run.state != "COMPLETED"
    )


class ApiPatience:
    """Tolerate an unreachable Prefect API for a while: a server restart must not fail the waiting parent.

    ``failed(now)`` is called on each failed poll and says whether to keep trying; ``ok()`` after a
    good one starts the clock afresh. Time is passed in, so tests need no sleeping.
    """

    def __init__(self, patience_s: float = API_PATIENCE_S):
        self.patience_s = patience_s
        self.down_since: float | None = None

    def ok(self) -> None:
        """Record a successful call: the next outage gets the full patience again."""
        self.down_since = None

    def failed(self, now: float) -> bool:
        """Record a failed call at ``now`` (monotonic seconds); return True while still within patience."""
        if self.down_since is None:
            self.down_since = now
        return now - self.down_since <= self.patience_s


def is_transient_api_error(status_code: int | None) -> bool:
    """Return whether an API answer with this HTTP status is worth polling again (None: no answer at all)."""
    return status_code is None or status_code in {408, 429} or status_code >= 500


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


def shard_run_name(parent_name: str, index: int, shards: int, attempt: int) -> str:
    """Return a shard run's name as the UI lists it: the parent's name, the part, and the try after a crash."""
    name = f"{parent_name}-shard-{index + 1}-of-{shards}"
    return name if attempt <= 1 else f"{name}-try-{attempt}"
