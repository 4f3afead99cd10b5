"""Which requests a run failed on: the ledger's failed records, each tied to its failed task run whatever its
name, and the failed task runs that left no record. Task runs are built as the API returns them."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

from prefect.client.schemas.objects import State, TaskRun
from prefect.states import Completed, Failed

from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.prefect_runs.failed import (
    UNKNOWN_FILE,
    FailedImage,
    file_of,
    identify,
    keys_to_retry,
    task_of,
)

RUN = str(uuid4())
SHARD = str(uuid4())
REFUSED = "PermanentTeacherError: HTTP 400: The request was refused"
TRUNCATED = "ImageError: image file is truncated"
LOST = "RuntimeError: the worker went away"  # a crash before the ledger heard of it


def task_run(name: str, reason: str | None = REFUSED, flow_run_id: str = RUN, run_count: int = 1) -> TaskRun:
    """A task run as the API lists it: failed with Prefect's message for ``reason``, or completed for None."""
    state: State[object] = Failed(message=f"Task run encountered an exception {reason}") if reason else Completed()
    return TaskRun(
        id=uuid4(), name=name, flow_run_id=UUID(flow_run_id), task_key="ask_teacher-1a2b", dynamic_key=str(uuid4()),
        state=state, run_count=run_count,
    )  # fmt: skip


def failure(rel_path: str, reason: str = REFUSED, flow_run_id: str = RUN, kind: str = "answer", **more: object) -> TeacherRecord:
    """A failed record of the ledger, as ``ask_and_record`` stores it."""
    error_class, message = reason.split(": ", 1)
    return TeacherRecord(
        key=f"{kind}:{rel_path}:{more.pop('prompt', 'p')}", status="failed", image_path=f"/images/{rel_path}",
        rel_path=rel_path, sha256="0" * 64, prompt="Describe.", system=None, model="gpt-4o-mini", params={},
        error_class=error_class, error_message=message, flow_run_id=flow_run_id, kind=kind, **more,  # type: ignore[arg-type]
    )  # fmt: skip


def listed(images: list[FailedImage]) -> list[tuple[str, str, str]]:
    return [(image.file, image.reason, image.task_run_name) for image in images]


def test_default_names_are_teacher_runs_without_an_image() -> None:
    assert task_of("ask-teacher-ffb") == "ask-teacher" and file_of("ask-teacher-ffb") is None
    assert task_of("ask-questions-0a1") == "ask-questions" and task_of("judge-answer-3c4") == "judge-answer"
    assert task_of("ask-teacher[a/x.jpg #2]") == "ask-teacher" and file_of("ask-teacher[a/x.jpg #2]") == "a/x.jpg"
    assert task_of("publish-artifacts-2f7") is None and task_of("train[tiny]") is None


def test_a_failed_record_is_listed_with_its_task_run_named_or_not() -> None:
    named, unnamed = task_run("ask-teacher[a/x.jpg]"), task_run("ask-teacher-ffb", TRUNCATED)
    images = identify([named, unnamed], [failure("a/x.jpg"), failure("b/y.jpg", TRUNCATED)])
    assert listed(images) == [("a/x.jpg", REFUSED, "ask-teacher[a/x.jpg]"), ("b/y.jpg", TRUNCATED, "ask-teacher-ffb")]
    assert [image.task_run_id for image in images] == [str(named.id), str(unnamed.id)]


def test_runs_under_default_names_are_tied_by_stage_and_reason_first() -> None:
    refused, truncated = task_run("ask-teacher-aaa"), task_run("ask-teacher-bbb", TRUNCATED)
    questions = task_run("ask-questions-ccc")
    records = [failure("t.jpg", TRUNCATED), failure("q.jpg", kind="questions"), failure("r.jpg")]
    images = identify([questions, truncated, refused], records)
    assert listed(images) == [
        ("q.jpg", REFUSED, "ask-questions-ccc"), ("r.jpg", REFUSED, "ask-teacher-aaa"),
        ("t.jpg", TRUNCATED, "ask-teacher-bbb"),
    ]  # fmt: skip


def test_a_run_is_tied_only_to_records_of_its_own_flow_run() -> None:
    in_shard = task_run("ask-teacher-ffb", flow_run_id=SHARD)
    images = identify([in_shard], [failure("a.jpg", flow_run_id=SHARD), failure("b.jpg")])
    assert [(image.file, image.task_run_id) for image in images] == [("a.jpg", str(in_shard.id)), ("b.jpg", "")]


def test_failed_runs_without_a_record_are_listed_never_dropped() -> None:
    """A crash before recording: by the image the name gives, else unknown with the task run's id."""
    crashed_named, tied = task_run("ask-teacher[c.jpg #2]"), task_run("ask-teacher-0a1")
    crashed_unnamed = task_run("ask-teacher-ffb", LOST, run_count=3)
    images = identify([crashed_unnamed, tied, crashed_named], [failure("a.jpg")])
    assert listed(images) == [
        ("a.jpg", REFUSED, "ask-teacher-0a1"), ("c.jpg", REFUSED, "ask-teacher[c.jpg #2]"),
        (UNKNOWN_FILE, LOST, "ask-teacher-ffb"),
    ]  # fmt: skip
    assert (images[2].task_run_id, images[2].attempts) == (str(crashed_unnamed.id), 3)


def test_other_tasks_and_records_without_a_task_run_batch_requests() -> None:
    images = identify(
        [task_run("publish-artifacts-2f7"), task_run("train[tiny]")],
        [failure("a.jpg", batch_id="batch_1", attempts=2)],
    )
    assert [(i.file, i.reason, i.attempts, i.task_run_id) for i in images] == [
        ("a.jpg", f"{REFUSED} (batch batch_1)", 2, "")
    ]  # fmt: skip


def test_two_prompts_of_one_image_are_two_requests() -> None:
    runs = [task_run("ask-teacher[a.jpg]"), task_run("ask-teacher[a.jpg]")]
    images = identify(runs, [failure("a.jpg", prompt="one"), failure("a.jpg", prompt="two")])
    assert len({image.task_run_id for image in images}) == 2 and all(image.file == "a.jpg" for image in images)


def test_unknown_images_select_no_record_to_retry(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.record(failure("a.jpg", flow_run_id="older run"))
        ledger.record(failure("", flow_run_id="older run", prompt="q"))  # a record without a path never matches
    assert keys_to_retry(tmp_path, RUN, [UNKNOWN_FILE]) == []
    assert keys_to_retry(tmp_path, RUN, ["a.jpg", UNKNOWN_FILE]) == ["answer:a.jpg:p"]
