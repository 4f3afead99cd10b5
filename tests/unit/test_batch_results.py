"""Batch result lines become the records online mode writes: answered, unusable, failed, or not run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vqa_distill.errors import PermanentTeacherError, TransientTeacherError
from vqa_distill.teacher.batch.results import not_run_record, parse_result_line, result_record
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import (
    STATUS_ANSWERED,
    STATUS_FAILED,
    STATUS_SUBMITTED,
    STATUS_UNUSABLE,
    TeacherRecord,
)


def _output(status: int, body: dict[str, Any]) -> str:
    return json.dumps({"id": "batch_req_1", "custom_id": "k1", "error": None,
                       "response": {"status_code": status, "request_id": "req_1", "body": body}})  # fmt: skip


def _completion(content: str | None, finish: str) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": finish,
            "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}}  # fmt: skip


REQUEST = TeacherRequest(image_path="/i/a.png", rel_path="sub/a.png", sha256="aa", prompt="p", system=None,
                         model="gpt-4o-mini", params={})  # fmt: skip


def _submitted() -> TeacherRecord:
    return TeacherRecord(key=REQUEST.key, status=STATUS_SUBMITTED, image_path="/i/a.png", rel_path="sub/a.png",
                         sha256="aa", prompt="p", system=None, model="gpt-4o-mini", params={}, attempts=0,
                         flow_run_id="submit-run", batch_id="batch_1", created_at="2025-01-01T00:00:00")  # fmt: skip


@pytest.mark.parametrize(
    ("content", "finish", "status", "reason"),
    [
        ("Two scratches.", "stop", STATUS_ANSWERED, None),
        ("Two scr", "length", STATUS_UNUSABLE, "finish_reason=length"),
        (None, "content_filter", STATUS_UNUSABLE, "finish_reason=content_filter"),
        ("  ", "stop", STATUS_UNUSABLE, "empty"),
    ],
)
def test_an_answer_line_is_recorded_as_online(
    content: str | None, finish: str, status: str, reason: str | None
) -> None:
    result = parse_result_line(_output(200, _completion(content, finish)))
    record = result_record(_submitted(), result, "batch_1")
    assert (record.key, record.status, record.batch_id) == (REQUEST.key, status, "batch_1")
    assert record.flow_run_id == "submit-run"
    assert (record.prompt_tokens, record.completion_tokens, record.attempts, record.latency_s) == (
        120,
        30,
        1,
        None,
    )
    assert (record.error_message is None) if reason is None else (reason in str(record.error_message))


@pytest.mark.parametrize(("status", "kind"), [(400, PermanentTeacherError), (503, TransientTeacherError)])
def test_an_error_line_carries_its_status_code_and_message(status: int, kind: type) -> None:
    body = {"error": {"message": "The request was refused.", "type": "invalid_request_error", "code": None}}
    result = parse_result_line(_output(status, body))
    assert isinstance(result.error, kind)
    record = result_record(_submitted(), result, "batch_1")
    assert record.status == STATUS_FAILED and record.status_code == status
    assert (
        record.error_message == f"HTTP {status}: The request was refused." and record.rel_path == "sub/a.png"
    )


def test_lines_never_run_go_back_to_not_answered() -> None:
    for code, why in (("batch_expired", "expired"), ("batch_cancelled", "cancelled")):
        line = json.dumps({"custom_id": "k1", "response": None, "error": {"code": code, "message": "m"}})
        assert parse_result_line(line).not_run == why
        record = not_run_record(_submitted(), "batch_1", why)
        assert record.status == STATUS_FAILED and record.error_class in {"BatchExpired", "BatchCancelled"}
        assert "asked again" in str(record.error_message) and record.batch_id == "batch_1"
    other = json.dumps(
        {"custom_id": "k1", "response": None, "error": {"code": "invalid_image", "message": "bad"}}
    )
    assert str(parse_result_line(other).error) == "invalid_image: bad"
    refused = not_run_record(_submitted(), "batch_1", "failed", "line 1: mixed models")
    assert refused.error_class == "BatchFailed" and "mixed models" in str(refused.error_message)
    with pytest.raises(ValueError):
        parse_result_line('{"response": {}}')
