"""A key answered, or claimed by a batch, after the run planned is not asked: one look at the ledger before paying.

Another run (a nightly refresh, a shard's re-run, a Batch API submit) may answer or claim a key between
this run's plan and its ask; the plan cannot see it, the task's last look can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flows.generate as generate_flow
from tests.support.helpers import make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.teacher.answers.outcomes import base_record
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, STATUS_SUBMITTED, Ledger
from vqa_distill.teacher.run.plan import plan_run


@pytest.mark.parametrize("meanwhile", ["answered", "in a batch"])
def test_a_key_answered_or_claimed_after_the_plan_is_not_asked(
    tmp_path: Path, teacher: Any, api_key_env: str, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    make_images(tmp_path / "images", 4)
    params = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url, preflight=False)
    taken: list[str] = []

    def plan_then_another_run_takes_one(params: Any, ledger: Ledger, only_keys: Any = None) -> Any:
        plan = plan_run(params, ledger, only_keys)
        request = plan.to_ask[0]
        record = base_record(request, 1, "another-run", "2026-12-05T00:00:00+00:00",
                             status=STATUS_ANSWERED if meanwhile == "answered" else STATUS_SUBMITTED)  # fmt: skip
        record.answer, record.batch_id = "answered by another run", "batch_other" if meanwhile != "answered" else None
        assert ledger.record(record)
        taken.append(request.sha256)
        return plan

    monkeypatch.setattr(generate_flow, "plan_run", plan_then_another_run_takes_one)
    teacher.reset()
    outcome = run_generate_flow(params, show_progress=False)
    asked = [r for r in teacher.stats()["requests"]]
    assert len(asked) == 3, f"{len(asked)} requests: the key taken meanwhile was asked too"
    assert outcome.summary is not None
    if meanwhile == "answered":
        assert (outcome.summary.answered_now, outcome.summary.failed) == (3, 0)
        assert outcome.summary.already_answered == 1  # filed as a cache hit: nothing paid
    else:
        assert (outcome.summary.answered_now, outcome.summary.failed) == (3, 1)  # not answered here: the batch will
        with Ledger(params.out) as ledger:
            assert ledger.in_flight_keys() and all(r.status == STATUS_SUBMITTED for r in ledger.records(STATUS_SUBMITTED))
