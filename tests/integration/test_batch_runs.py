"""Batch mode end to end against the offline teacher: submit, collect, in flight, expiry, duplicates, splits.

Runs go through the real flows (in this process, on the session's Prefect server), the real ``openai``
client and real HTTP; the server's batch clock is sped up and held with ``/_admin/batches``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from flows.batch_collect import collect_batches
from flows.generate import generate
from tests.support.batch_helpers import fast_batches, server_batches, sync_client, wait_batches_final
from tests.support.helpers import chat_requests, generate_args, make_images, params_for, run_cli
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED
from vqa_distill.flow_state import run_flow
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.files import MAX_BYTES_ENV, batch_line
from vqa_distill.teacher.batch.submit import SubmitHooks, submit_run
from vqa_distill.teacher.images.prepare import prepare_image
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, STATUS_FAILED, STATUS_SUBMITTED, Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.plan import plan_run
from vqa_distill.teacher.run.summary import RunSummary


def submit(params: TeacherParams) -> RunSummary:
    """Run ``generate`` in batch mode; return its summary."""
    result = run_flow(generate(params, return_state=True)).result  # type: ignore[call-overload]
    assert isinstance(result, RunSummary), result
    return result


def collect(*outs: Path) -> list[Any]:
    """Run ``collect-batches`` on the folders; return what it collected."""
    result = run_flow(collect_batches(outs=[str(o) for o in outs], return_state=True)).result  # type: ignore[call-overload]
    assert isinstance(result, list), result
    return result


def test_submit_then_collect_builds_the_online_dataset(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    fast_batches(teacher, max_lines=0)  # the batch is held in progress until released below
    make_images(tmp_path / "images", 3)
    params = params_for(tmp_path / "images", tmp_path / "batch", teacher.base_url, batch=True)
    first = submit(params)
    assert first.batch is not None and first.batch.lines == 3 and len(first.batch.batch_ids) == 1
    assert first.answered_now == 0 and first.batch.in_flight == 3 and first.not_asked == 0

    again = submit(params)  # while the first is in flight: nothing is sent again
    assert again.batch is not None and again.batch.lines == 0 and again.batch.batch_ids == []
    online_same_folder = run_flow(generate(params.model_copy(update={"batch": False}), return_state=True))  # type: ignore[call-overload]
    assert online_same_folder.result.answered_now == 0 and chat_requests(teacher.stats()) == []
    assert [b["total"] for b in server_batches(teacher)] == [3]

    fast_batches(teacher)  # released
    wait_batches_final(teacher)
    [collected] = collect(tmp_path / "batch")
    summary = collected.summary
    assert summary.answered_now == 3 and summary.failed == 0 and summary.batch.duplicates == 0
    assert summary.estimated_cost_usd is not None and summary.batch.online_cost_usd == pytest.approx(
        2 * summary.estimated_cost_usd, abs=1e-5
    )
    assert collect(tmp_path / "batch") == []  # nothing new: nothing done

    online = params_for(tmp_path / "images", tmp_path / "online", teacher.base_url)
    run_flow(generate(online, return_state=True))  # type: ignore[call-overload]
    batch_rows = read_jsonl(tmp_path / "batch" / "train.jsonl")
    online_rows = read_jsonl(tmp_path / "online" / "train.jsonl")
    # The same rows, each naming the same picture (its content address) in its own run folder's images/.
    assert [{**r, "images": [Path(p).name for p in r["images"]]} for r in batch_rows] == [
        {**r, "images": [Path(p).name for p in r["images"]]} for r in online_rows
    ] and len(batch_rows) == 3

    listing = run_cli("batches", "--out", str(tmp_path / "batch"), "--json")
    assert listing.returncode == EXIT_OK, listing.stderr
    assert '"status": "completed"' in listing.stdout and '"collected": "yes"' in listing.stdout
    [at_endpoint] = json.loads(run_cli("batches", "--base-url", teacher.base_url, "--json").stdout)
    assert at_endpoint["run folder"] == str(tmp_path / "batch") and at_endpoint["collected"] == "yes"


def test_an_expired_batch_keeps_its_answers_and_the_rest_is_asked_again_once(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    fast_batches(teacher, max_lines=2, window_s=1.0)
    make_images(tmp_path / "images", 5)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)
    submit(params)
    assert [b["status"] for b in wait_batches_final(teacher)] == ["expired"]
    [first] = collect(tmp_path / "run")
    assert (first.summary.answered_now, first.summary.failed, first.summary.batch.not_run) == (2, 3, 3)
    with Ledger(tmp_path / "run") as ledger:
        left = {r.key for r in ledger.records(STATUS_FAILED)}
        assert {r.error_class for r in ledger.records(STATUS_FAILED)} == {"BatchExpired"}
    assert len(read_jsonl(tmp_path / "run" / "failed.jsonl")) == 3
    listing = run_cli("batches", "--out", str(tmp_path / "run"))
    assert listing.returncode == EXIT_SOME_FAILED and "expired" in listing.stdout  # a batch expired

    fast_batches(teacher)
    resubmitted = submit(params)
    assert resubmitted.batch is not None and resubmitted.batch.lines == 3
    second = wait_batches_final(teacher)[-1]
    assert second["status"] == "completed" and set(second["answered"]) == left  # exactly the rest, once
    [done] = collect(tmp_path / "run")
    assert done.summary.answered_now == 3 and done.summary.failed == 0
    assert len(read_jsonl(tmp_path / "run" / "train.jsonl")) == 5
    assert submit(params).batch.lines == 0  # type: ignore[union-attr]


def test_a_line_answered_online_too_is_recorded_once(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    fast_batches(teacher, max_lines=0)
    make_images(tmp_path / "images", 2)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)
    submit(params)
    with Ledger(params.out) as ledger:  # an answer that came another way while the batch ran
        raced = next(ledger.records(STATUS_SUBMITTED))
        raced.status, raced.answer, raced.batch_id, raced.finish_reason = (
            STATUS_ANSWERED,
            "answered online",
            None,
            "stop",
        )
        ledger.record(raced)
    fast_batches(teacher)
    wait_batches_final(teacher)
    [collected] = collect(tmp_path / "run")
    assert collected.summary.batch.duplicates == 1 and collected.summary.answered_now == 1
    with Ledger(params.out) as ledger:
        assert ledger.get(raced.key).answer == "answered online"  # type: ignore[union-attr]
        assert len(ledger.keys_with_status(STATUS_ANSWERED)) == 2


class Killed(Exception):
    """Stands for the process dying at that point."""


def _die(*_: object) -> None:
    raise Killed


async def _submit_direct(params: TeacherParams, hooks: SubmitHooks | None = None) -> Any:
    clients = BatchClients()
    try:
        with Ledger(params.out) as ledger:
            client = await clients.get(params.base_url, None)
            return await submit_run(params, ledger, client, flow_run_id="run-1", hooks=hooks)
    finally:
        await clients.aclose()


def test_an_interrupted_submit_is_found_again_and_never_sent_twice(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    fast_batches(teacher, max_lines=0)
    client = sync_client(teacher)
    make_images(tmp_path / "images", 3)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)

    # Killed after the batch was created, before its id was recorded: found by its metadata.
    with pytest.raises(Killed):
        asyncio.run(_submit_direct(params, SubmitHooks(after_create=_die)))
    [created] = server_batches(teacher)
    with Ledger(params.out) as ledger:
        assert (
            plan_run(params.model_copy(update={"batch": False}), ledger).to_ask == []
        )  # not asked online either
    outcome = asyncio.run(_submit_direct(params))
    assert outcome.recovery.adopted == [created["id"]] and outcome.lines == 0
    assert len(server_batches(teacher)) == 1
    with Ledger(params.out) as ledger:
        assert {r.batch_id for r in ledger.records()} == {created["id"]}

    # Killed after the upload, before any batch existed: the keys come back, the orphan upload goes.
    make_images(tmp_path / "images", 2, prefix="more")
    with pytest.raises(Killed):
        asyncio.run(_submit_direct(params, SubmitHooks(after_upload=_die)))
    assert len(server_batches(teacher)) == 1 and len(client.files.list(purpose="batch").data) == 2
    outcome = asyncio.run(_submit_direct(params))
    assert outcome.recovery.released == 2 and outcome.lines == 2
    assert len(server_batches(teacher)) == 2 and [row.requests for row in outcome.batches] == [2]
    assert len(client.files.list(purpose="batch").data) == 2  # the orphan was deleted, the new one is there


def test_a_small_file_limit_splits_a_submission_into_three_batches(
    tmp_path: Path, teacher: Any, api_key_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_images(tmp_path / "images", 6)
    params = params_for(tmp_path / "images", tmp_path / "run", teacher.base_url, batch=True)
    with Ledger(tmp_path / "probe") as ledger:
        sizes = [
            len(batch_line(r, prepare_image(r.image_path, params.max_pixels)))
            for r in plan_run(params, ledger).to_ask
        ]
    limit = 2 * max(sizes)
    assert 3 * min(sizes) > limit  # two lines fit in a file, three do not
    monkeypatch.setenv(MAX_BYTES_ENV, str(limit))
    fast_batches(teacher, max_bytes=limit)  # the server refuses any larger file
    summary = submit(params)
    assert (
        summary.batch is not None and len(summary.batch.batch_ids) == 3 and summary.batch.lines_per_file == 2
    )
    batches = wait_batches_final(teacher)
    assert [(b["status"], b["total"]) for b in batches] == [("completed", 2)] * 3
    [collected] = collect(tmp_path / "run")
    assert collected.summary.answered_now == 6 and len(read_jsonl(tmp_path / "run" / "train.jsonl")) == 6


def test_line_errors_are_listed_by_image_and_retried_online(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    """Through the command line: generate --batch, collect, failed, retry-failed (online), with exit codes."""
    fast_batches(teacher)
    teacher.set_faults([{"kind": "400", "match_image_size": "40x40"}])
    make_images(tmp_path / "images", 2)
    make_images(tmp_path / "images", 2, prefix="odd", size=(40, 40))
    out = tmp_path / "run"
    submitted = run_cli(*generate_args(tmp_path / "images", out, teacher.base_url, "--batch"))
    assert submitted.returncode == EXIT_OK, submitted.stdout + submitted.stderr
    assert (
        "submitted 4 line(s) in 1 batch(es): batch_" in submitted.stdout
        and "vqa-distill collect" in submitted.stdout
    )
    run_id = json.loads((out / "summary.json").read_text())["flow_run_id"]
    wait_batches_final(teacher)

    collected = run_cli(
        "collect", "--base-url", teacher.base_url
    )  # the run folder, found by the batch's metadata
    assert collected.returncode == EXIT_SOME_FAILED, collected.stdout + collected.stderr
    failed = read_jsonl(out / "failed.jsonl")
    assert sorted(Path(r["image_path"]).name for r in failed) == ["odd_000.png", "odd_001.png"]
    assert all(r["status_code"] == 400 and r["error_message"].startswith("HTTP 400:") for r in failed)
    listing = run_cli("failed", run_id, "--json")
    assert listing.returncode == EXIT_SOME_FAILED, listing.stderr
    images = json.loads(listing.stdout)["images"]
    assert [i["file"] for i in images] == ["odd_000.png", "odd_001.png"] and all(
        "HTTP 400" in i["reason"] for i in images
    )

    nowhere = run_cli("collect", "--out", str(tmp_path / "nowhere"))
    assert (
        nowhere.returncode == EXIT_FATAL
        and nowhere.stderr.strip() == f"error: no ledger.sqlite in {tmp_path / 'nowhere'}"
    )

    teacher.set_faults([])
    retried = run_cli("retry-failed", run_id)
    assert retried.returncode == EXIT_OK, retried.stdout + retried.stderr
    assert sorted(r["image_sizes"][0] for r in chat_requests(teacher.stats())) == [
        "40x40",
        "40x40",
    ]  # online, only them
    assert len(read_jsonl(out / "train.jsonl")) == 4
