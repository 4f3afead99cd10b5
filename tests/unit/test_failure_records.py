"""A failure's record says why in the error's own words; only a bug is marked unexpected."""

from __future__ import annotations

import pytest

from vqa_distill.errors import ImageError, TeacherAuthError, TransientTeacherError
from vqa_distill.teacher.answers.outcomes import failure_record
from vqa_distill.teacher.endpoint.request import TeacherRequest

REQUEST = TeacherRequest(image_path="/i/cat.png", rel_path="cat.png", sha256="ab" * 32, prompt="p", system=None,
                         model="gpt-4o-mini", params={})  # fmt: skip


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (TeacherAuthError("the quota is spent (insufficient_quota): check the plan and billing"),
         "the quota is spent (insufficient_quota): check the plan and billing"),
        (ImageError("cat.png: not a decodable image"), "cat.png: not a decodable image"),
        (TransientTeacherError("HTTP 503: overloaded", status_code=503), "HTTP 503: overloaded"),
        (KeyError("x"), "unexpected KeyError: 'x'"),
    ],
)
def test_the_record_keeps_the_errors_own_words(error: BaseException, message: str) -> None:
    record = failure_record(REQUEST, error, attempts=1, flow_run_id="r", started_at="2026-12-05T00:00:00+00:00")
    assert record.error_message == message and record.error_class == type(error).__name__
