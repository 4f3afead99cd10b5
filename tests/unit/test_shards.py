"""Sharded teacher runs without Prefect: the split, the re-run decisions, patience with the API, the gathering."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.helpers import make_images, params_for
from vqa_distill.ops.deploy import ZOMBIE_MISSED_BEATS, zombie_automation
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.prefect_runs.failed import keys_to_retry
from vqa_distill.teacher.prefect_runs.shard_runs import (
    ShardKey,
    latest_tries,
    parse_shard_key,
    shard_idempotency_key,
)
from vqa_distill.teacher.run.plan import RunPlan, plan_run
from vqa_distill.teacher.shards.polling import (
    ApiPatience,
    Next,
    ShardRun,
    is_transient_api_error,
    next_step,
    unfinished_message,
)
from vqa_distill.teacher.shards.split import (
    gather_outcome,
    keys_of_shard,
    pending_by_shard,
    shard_of,
    shard_plan,
    shard_run_name,
)

PROMPTS = ["Describe the defects.", "Name the colours."]


@pytest.fixture
def folder_plan(tmp_path: Path) -> tuple[TeacherParams, RunPlan]:
    """A real plan: 30 pictures x 2 prompts, nothing answered yet."""
    make_images(tmp_path / "images", 30)
    params = params_for(tmp_path / "images", tmp_path / "run", "http://127.0.0.1:9/v1", prompts=PROMPTS, shards=3)
    with Ledger(params.out) as ledger:
        return params, plan_run(params, ledger)


def test_the_split_is_a_pure_function_of_the_image_bytes() -> None:
    sha = "9f" * 32
    assert shard_of(sha, 1) == 0
    assert shard_of(sha, 7) == shard_of(sha, 7) == int(sha[:8], 16) % 7
    assert {shard_of(f"{i:08x}" + "0" * 56, 4) for i in range(16)} == {0, 1, 2, 3}


def test_every_request_is_in_exactly_one_shard_and_an_images_prompts_stay_together(
    folder_plan: tuple[TeacherParams, RunPlan],
) -> None:
    _, plan = folder_plan
    assert len(plan.to_ask) == 60
    parts = [shard_plan(plan, 3, index) for index in range(3)]
    asked = Counter(request.key for part in parts for request in part.to_ask)
    assert set(asked) == {request.key for request in plan.to_ask} and set(asked.values()) == {1}
    for index, part in enumerate(parts):
        assert part.requests == plan.requests and part.already_answered == plan.already_answered  # the dataset's view
        images = {request.sha256 for request in part.to_ask}
        assert all(shard_of(sha, 3) == index for sha in images)
        assert len(part.to_ask) == 2 * len(images)  # both prompts of each of its images
    assert pending_by_shard(plan, 3) == {index: len(part.to_ask) for index, part in enumerate(parts) if part.to_ask}
    assert sum(pending_by_shard(plan, 3).values()) == 60 and len(pending_by_shard(plan, 3)) == 3  # 30 images: all used


def test_questions_mode_splits_by_image_too(tmp_path: Path) -> None:
    make_images(tmp_path / "images", 12)
    params = params_for(tmp_path / "images", tmp_path / "run", "http://127.0.0.1:9/v1", prompts=PROMPTS, questions=2)
    with Ledger(params.out) as ledger:
        plan = plan_run(params, ledger)
    assert plan.staged is not None and len(plan.staged.jobs) == 24
    jobs = [job for index in range(3) for job in shard_plan(plan, 3, index).staged.jobs]  # type: ignore[union-attr]
    assert sorted(id(job) for job in jobs) == sorted(id(job) for job in plan.staged.jobs)
    assert sum(pending_by_shard(plan, 3).values()) == 24


def test_retry_keys_go_to_the_shard_that_owns_them(folder_plan: tuple[TeacherParams, RunPlan]) -> None:
    _, plan = folder_plan
    chosen = [plan.to_ask[0].key, plan.to_ask[7].key, "unknown-key"]
    split = [keys_of_shard(chosen, plan.requests, 3, index) for index in range(3)]
    owned = [key for part in split for key in part or [] if key != "unknown-key"]
    assert sorted(owned) == sorted(chosen[:2])  # each known key in exactly one shard
    assert all(part is not None and "unknown-key" in part for part in split)  # unknown: every shard filters it
    assert keys_of_shard(None, plan.requests, 3, 0) is None


@pytest.mark.parametrize(
    ("state", "attempt", "expected"),
    [
        (None, 1, Next.WAIT), ("SCHEDULED", 1, Next.WAIT), ("PENDING", 1, Next.WAIT), ("RUNNING", 2, Next.WAIT),
        ("CANCELLING", 1, Next.WAIT), ("COMPLETED", 1, Next.DONE), ("FAILED", 1, Next.DONE),
        ("CRASHED", 1, Next.RERUN), ("CRASHED", 2, Next.RERUN), ("CRASHED", 3, Next.GIVE_UP),
        ("CANCELLED", 1, Next.GIVE_UP),
    ],
)  # fmt: skip
def test_what_the_parent_does_about_a_shard_run(state: str | None, attempt: int, expected: Next) -> None:
    assert next_step(state, attempt, max_attempts=3) is expected


def test_the_api_may_be_away_for_a_while_not_for_ever() -> None:
    patience = ApiPatience(patience_s=60)
    assert patience.failed(100.0) and patience.failed(159.0)
    assert not patience.failed(161.0)
    patience.ok()
    assert patience.failed(500.0) and patience.failed(560.0)  # a later outage gets the full patience again
    assert is_transient_api_error(None) and is_transient_api_error(503) and is_transient_api_error(429)
    assert not is_transient_api_error(404) and not is_transient_api_error(422)


def _record(request_key: str, status: str, run: str, sha: str = "ab" * 32) -> TeacherRecord:
    return TeacherRecord(key=request_key, status=status, image_path=f"/i/{request_key}.png",
                         rel_path=f"{request_key}.png", sha256=sha, prompt="p", system=None, model="m", params={},
                         flow_run_id=run, prompt_tokens=10, completion_tokens=5)  # fmt: skip


def test_the_parent_reads_what_its_shards_did_from_the_ledger(
    folder_plan: tuple[TeacherParams, RunPlan],
) -> None:
    params, plan = folder_plan
    keys = [request.key for request in plan.to_ask]
    with Ledger(params.out) as ledger:
        ledger.record(_record(keys[0], "answered", "shard-a"))
        ledger.record(_record(keys[1], "answered", "shard-a-try-2"))  # after a crash: still paid by this run
        ledger.record(_record(keys[2], "failed", "shard-b"))
        ledger.record(_record(keys[3], "answered", "someone-else"))  # Prefect's cache copied another run's answer
        ledger.record(_record(keys[4], "failed", "old-run"))  # not this run's failure
        ledger.record(_record("a-question-answer", "unusable", "shard-b"))  # unknown to the plan: discovered
        outcome = gather_outcome(plan, ledger, ["shard-a", "shard-a-try-2", "shard-b"])
    assert sorted(r.key for r in outcome.fresh) == sorted([keys[0], keys[1], "a-question-answer"])
    assert [r.key for r in outcome.failures] == [keys[2]]
    assert outcome.cached == 1 and outcome.discovered == 1 and outcome.asked == 5


def test_shard_runs_are_found_again_by_their_idempotency_keys() -> None:
    parent = "0b8c6a5e-0000-4000-8000-000000000001"
    assert parse_shard_key(shard_idempotency_key(parent, 2, 1, 3), parent) == ShardKey(2, 1, 3)
    assert parse_shard_key(shard_idempotency_key("another-parent", 1, 0, 1), parent) is None
    assert parse_shard_key(None, parent) is None and parse_shard_key(f"{parent}:x:1:1", parent) is None
    keys = {
        "s0-first": ShardKey(1, 0, 1), "s1-crashed": ShardKey(1, 1, 1), "s1-again": ShardKey(1, 1, 2),
        "s2-first": ShardKey(1, 2, 1),
    }  # fmt: skip
    assert latest_tries(keys) == ["s0-first", "s1-again", "s2-first"]
    # The UI's Retry of the parent started only shard 2 again: shards 0 and 1 had nothing left.
    assert latest_tries({**keys, "s2-retry": ShardKey(2, 2, 1)}) == ["s2-retry"]
    assert latest_tries({}) == []


def test_the_parent_says_which_shards_did_not_complete() -> None:
    done = ShardRun(0, ["a"], state="COMPLETED", outcome=Next.DONE)
    crashed = ShardRun(1, ["b", "c", "d"], state="CRASHED", message="process exited -9", outcome=Next.GIVE_UP)
    refused = ShardRun(2, ["e"], state="FAILED", message="the API key was refused", outcome=Next.DONE)
    assert unfinished_message([done]) == ""
    assert unfinished_message([done, crashed, refused]) == (
        "shard 2 crashed after 3 runs: process exited -9; shard 3 failed: the API key was refused"
    )
    assert shard_run_name("brave-otter", 1, 3, 1) == "brave-otter-shard-2-of-3"
    assert shard_run_name("brave-otter", 1, 3, 2) == "brave-otter-shard-2-of-3-try-2"


def test_retry_keys_of_a_sharded_run_come_from_every_shard_run(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.record(_record("a", "failed", "shard-1"))
        ledger.record(_record("b", "failed", "shard-2"))
        ledger.record(_record("c", "failed", "other-run"))
    assert keys_to_retry(tmp_path, ["parent", "shard-1", "shard-2"], []) == ["a", "b"]
    assert keys_to_retry(tmp_path, "shard-2", []) == ["b"]


def test_zombie_automation_marks_silent_runs_crashed_after_missed_beats() -> None:
    automation = zombie_automation(30)
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.within == timedelta(seconds=30 * ZOMBIE_MISSED_BEATS)  # type: ignore[union-attr]
    assert trigger.after == {"prefect.flow-run.heartbeat"}  # type: ignore[union-attr]
    assert "prefect.flow-run.Completed" in trigger.expect and trigger.for_each == {"prefect.resource.id"}  # type: ignore[union-attr]
    (action,) = automation.actions
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED"  # type: ignore[union-attr]


def test_shards_are_for_online_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shards split online runs"):
        params_for(tmp_path, tmp_path / "run", "http://x/v1", batch=True, shards=2)
    with pytest.raises(ValueError):
        params_for(tmp_path, tmp_path / "run", "http://x/v1", shards=65)
