"""Batch and online runs overlapping on one folder: nothing is uploaded, billed or sent again for a key
answered, claimed or carried elsewhere.

Against the offline teacher's Batch API, through the library's submit (the real ``openai`` client and
real HTTP); the race is made at the exact point where another run could step in: right after the
submit read its plan.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.batch_helpers import fast_batches, server_batches, sync_client, wait_batches_final
from tests.support.helpers import make_images, params_for
from vqa_distill.errors import TransientTeacherError
from vqa_distill.teacher.answers.outcomes import answer_record, failure_record
from vqa_distill.teacher.batch import submit as submit_module
from vqa_distill.teacher.batch.book import PENDING, BatchBook, BatchRow
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.results import request_of
from vqa_distill.teacher.batch.submit import SubmitOutcome, submit_run
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, STATUS_SUBMITTED, Ledger, utc_now
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.plan import RunPlan


async def _submit(params: TeacherParams) -> SubmitOutcome:
    clients = BatchClients()
    try:
        with Ledger(params.out) as ledger:
            client = await clients.get(params.base_url, None)
            return await submit_run(params, ledger, client, flow_run_id="submit-run")
    finally:
        await clients.aclose()


def _uploaded_keys(teacher: Any, input_file_id: str | None) -> list[str]:
    """The custom_ids of an input file as the endpoint holds it (what it bills)."""
    assert input_file_id is not None
    content = sync_client(teacher).files.content(input_file_id).text
    return [json.loads(line)["custom_id"] for line in content.splitlines()]


def test_a_key_answered_or_claimed_after_the_plan_is_never_uploaded(
    tmp_path: Path, teacher: Any, api_key_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_batches(teacher, max_lines=0)  # held in progress: nothing is collected meanwhile
    make_images(tmp_path / "images", 3)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)
    raced: dict[str, str] = {}

    def plan_then_race(*args: Any, **kwargs: Any) -> RunPlan:
        plan = submit_module_plan_run(*args, **kwargs)
        answered, claimed, _left = plan.to_ask
        with Ledger(params.out) as other:  # another run of the folder, right after this plan was read
            paid = TeacherAnswer(text="answered online", finish_reason="stop", prompt_tokens=10,
                                 completion_tokens=3, latency_s=0.5)  # fmt: skip
            other.record(answer_record(answered, paid, attempts=1, flow_run_id="online-run", started_at=utc_now()))
            elsewhere = BatchRow(tag="elsewhere-p1", batch_id=None, status=PENDING, part=1, parts=1, requests=1,
                                 bytes=0, model=params.model, base_url="http://elsewhere/v1", api_key_block=None,
                                 flow_run_id="other-submit")  # fmt: skip
            with BatchBook(other) as book:
                book.claim(elsewhere, [claimed])
        raced.update(answered=answered.key, claimed=claimed.key, left=_left.key)
        return plan

    submit_module_plan_run = submit_module.plan_run
    monkeypatch.setattr(submit_module, "plan_run", plan_then_race)
    outcome = asyncio.run(_submit(params))

    [row] = outcome.batches
    assert _uploaded_keys(teacher, row.input_file_id) == [raced["left"]]  # only what this submit claimed
    assert outcome.lines == 1 and row.requests == 1 and outcome.taken == 2 and len(server_batches(teacher)) == 1
    with Ledger(params.out) as ledger:
        answered, claimed = ledger.get(raced["answered"]), ledger.get(raced["claimed"])
        assert answered is not None and (answered.status, answered.answer) == (STATUS_ANSWERED, "answered online")
        assert claimed is not None and (claimed.status, claimed.batch_id) == (STATUS_SUBMITTED, "elsewhere-p1")
        assert {r.key for r in ledger.in_batch(row.batch_id or "")} == {raced["left"]}


def test_an_online_failure_after_a_submit_leaves_the_claim_and_the_key_is_not_sent_again(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    fast_batches(teacher, max_lines=0)
    make_images(tmp_path / "images", 2)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)
    first = asyncio.run(_submit(params))
    [row] = first.batches
    assert first.lines == 2

    with Ledger(params.out) as ledger:  # an online run that planned before the claim fails on the key now
        carried = next(ledger.records(STATUS_SUBMITTED))
        failed = failure_record(request_of(carried), TransientTeacherError("HTTP 503: overloaded", status_code=503),
                                attempts=3, flow_run_id="online-run", started_at=utc_now())  # fmt: skip
        assert ledger.record(failed) is False
        kept = ledger.get(carried.key)
        assert kept is not None and (kept.status, kept.batch_id) == (STATUS_SUBMITTED, row.batch_id)

    again = asyncio.run(_submit(params))
    assert again.lines == 0 and again.batches == [] and len(server_batches(teacher)) == 1

    fast_batches(teacher)  # released: the one batch answers both keys, each sent once
    [done] = wait_batches_final(teacher)
    assert done["status"] == "completed" and sorted(done["answered"]) == sorted(_uploaded_keys(teacher, row.input_file_id))
    assert carried.key in done["answered"]
