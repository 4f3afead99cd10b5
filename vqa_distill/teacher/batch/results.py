"""Read a finished batch's output and error lines into the ledger records online mode would have written.

An output line with status 200 is an answer (usable, or ``unusable`` for finish_reason length /
content_filter / an empty answer); any other status, or an ``error`` object, is a failure carrying the
line's status code and message, worded as online failures are (``HTTP 400: <the API's message>``).
Lines the batch never ran (``batch_expired`` / ``batch_cancelled``, or missing from both files) are not
answered: they are recorded ``failed`` with that reason, so the next submit or ``retry-failed`` asks
exactly them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vqa_distill.errors import PermanentTeacherError, TeacherError, TransientTeacherError
from vqa_distill.teacher.answers.outcomes import answer_record, failure_record
from vqa_distill.teacher.endpoint.client import MAX_ERROR_MESSAGE_CHARS, TRANSIENT_STATUS_CODES, TeacherAnswer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import STATUS_FAILED, TeacherRecord, utc_now

UNFINISHED_CODES = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
NOT_RUN_CLASS = {
    "expired": "BatchExpired",
    "cancelled": "BatchCancelled",
    "failed": "BatchFailed",
    "completed": "BatchLineMissing",
}
RETURNED_CLASSES = frozenset({"BatchExpired", "BatchCancelled"})  # never run: not answered, asked again


@dataclass(frozen=True)
class LineResult:
    """What a batch said about one request: an answer, an error, or that it never ran (and why)."""

    key: str
    answer: TeacherAnswer | None = None
    error: TeacherError | None = None
    not_run: str | None = None  # "expired" or "cancelled"


def parse_result_line(text: str) -> LineResult:
    """Parse one line of an output or error file (raises ValueError on a line that is not one)."""
    line = json.loads(text)
    key = line.get("custom_id") if isinstance(line, dict) else None
    if not isinstance(key, str):
        raise ValueError("a batch result line without custom_id")
    response, error = line.get("response"), line.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        if code in UNFINISHED_CODES:
            return LineResult(key, not_run=UNFINISHED_CODES[code])
        message = str(error.get("message") or code)[:MAX_ERROR_MESSAGE_CHARS]
        return LineResult(key, error=PermanentTeacherError(f"{code}: {message}"))
    if not isinstance(response, dict):
        return LineResult(
            key, error=TransientTeacherError("the batch line has neither a response nor an error")
        )
    status = int(response.get("status_code") or 0)
    body = _mapping(response.get("body"))
    if status != 200:
        return LineResult(key, error=status_error(status, body))
    return _answer_of(key, body)


def status_error(status: int, body: dict[str, Any]) -> TeacherError:
    """Return the error an online call with this status and body would have raised."""
    error = _mapping(body.get("error"))
    message = f"HTTP {status}: {str(error.get('message') or 'error')[:MAX_ERROR_MESSAGE_CHARS]}"
    if status in TRANSIENT_STATUS_CODES or status >= 500:
        return TransientTeacherError(message, status_code=status)
    return PermanentTeacherError(message, status_code=status)


def _answer_of(key: str, body: dict[str, Any]) -> LineResult:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return LineResult(key, error=TransientTeacherError("the batch answered 200 without choices"))
    choice = choices[0]
    message = _mapping(choice.get("message"))
    usage = _mapping(body.get("usage"))
    answer = TeacherAnswer(
        text=str(message.get("content") or ""),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        latency_s=0.0,
    )
    return LineResult(key, answer=answer)


def _mapping(value: Any) -> dict[str, Any]:
    """Return ``value`` when it is a JSON object, else an empty one (a malformed line reads as empty)."""
    return value if isinstance(value, dict) else {}


def request_of(record: TeacherRecord) -> TeacherRequest:
    """Return the request a ledger record answers (its content key is the record's key)."""
    return TeacherRequest(
        image_path=record.image_path,
        rel_path=record.rel_path,
        sha256=record.sha256,
        prompt=record.prompt,
        system=record.system,
        model=record.model,
        params=record.params,
    )


def result_record(submitted: TeacherRecord, result: LineResult, batch_id: str) -> TeacherRecord:
    """Return the record of a line that ran: an answer (usable or not) or a failure with its status code."""
    request = request_of(submitted)
    common: dict[str, Any] = {
        "attempts": 1,
        "flow_run_id": submitted.flow_run_id,
        "started_at": submitted.created_at,
    }
    if result.answer is not None:
        record = answer_record(request, result.answer, **common)
        record.latency_s = None  # a batch has no per-request latency
    else:
        record = failure_record(request, result.error or TransientTeacherError("no result"), **common)
    record.batch_id = batch_id
    return record


def not_run_record(
    submitted: TeacherRecord, batch_id: str, why: str, detail: str | None = None
) -> TeacherRecord:
    """Return the failed record of a request a batch did not run (``why``: its final status or expired/cancelled)."""
    reasons = {
        "expired": "not answered before the batch expired",
        "cancelled": "not answered before the batch was cancelled",
        "failed": f"the batch was refused ({detail or 'no reason given'})",
        "completed": "missing from the finished batch's output and error files",
    }
    record = failure_record(
        request_of(submitted),
        PermanentTeacherError(f"{reasons.get(why, why)}; asked again by the next submit"),
        attempts=1,
        flow_run_id=submitted.flow_run_id,
        started_at=submitted.created_at,
    )
    record.error_class = NOT_RUN_CLASS.get(why, "BatchNotRun")
    record.status_code = None
    record.status = STATUS_FAILED
    record.batch_id = batch_id
    record.updated_at = utc_now()
    return record
