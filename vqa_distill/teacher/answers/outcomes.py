"""Turn an answer or an exception into the ledger record that says what happened to one request."""

from __future__ import annotations

from vqa_distill.errors import FatalRunError, ImageError, TeacherError
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import (
    STATUS_ANSWERED,
    STATUS_FAILED,
    STATUS_UNUSABLE,
    TeacherRecord,
    utc_now,
)

USABLE_FINISH_REASONS = frozenset({"stop", None})


def base_record(
    request: TeacherRequest, attempts: int, flow_run_id: str | None, started_at: str, status: str = STATUS_FAILED
) -> TeacherRecord:
    """Return the record of ``request`` with what every outcome shares: what was asked, by which run, when."""
    return TeacherRecord(
        key=request.key,
        status=status,
        image_path=request.image_path,
        rel_path=request.rel_path,
        sha256=request.sha256,
        prompt=request.prompt,
        system=request.system,
        model=request.model,
        params=dict(request.params),
        attempts=attempts,
        flow_run_id=flow_run_id,
        created_at=started_at,
    )


def answer_record(
    request: TeacherRequest, answer: TeacherAnswer, *, attempts: int, flow_run_id: str | None, started_at: str
) -> TeacherRecord:
    """Record an answer: usable when it finished normally and says something, else 'unusable' with why."""
    record = base_record(request, attempts, flow_run_id, started_at)
    record.answer = answer.text
    record.finish_reason = answer.finish_reason
    record.prompt_tokens = answer.prompt_tokens
    record.completion_tokens = answer.completion_tokens
    record.latency_s = round(answer.latency_s, 4)
    if answer.finish_reason not in USABLE_FINISH_REASONS:
        record.status = STATUS_UNUSABLE
        record.error_class = "UnusableAnswer"
        record.error_message = f"finish_reason={answer.finish_reason}: answer cut off or withheld"
    elif not answer.text.strip():
        record.status = STATUS_UNUSABLE
        record.error_class = "UnusableAnswer"
        record.error_message = "the answer is empty"
    else:
        record.status = STATUS_ANSWERED
    record.updated_at = utc_now()
    return record


def failure_record(
    request: TeacherRequest, error: BaseException, *, attempts: int, flow_run_id: str | None, started_at: str
) -> TeacherRecord:
    """Record a failed attempt with the error's class, message and HTTP status (when there was one)."""
    record = base_record(request, attempts, flow_run_id, started_at)
    record.error_class = type(error).__name__
    record.error_message = str(error) or type(error).__name__
    if isinstance(error, TeacherError):
        record.status_code = error.status_code
    elif not isinstance(error, ImageError | FatalRunError):  # a spent quota or refused key says it in its own words
        record.error_message = f"unexpected {type(error).__name__}: {error}"
    return record
