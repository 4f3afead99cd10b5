"""The judge: a score from 1 to 5 for one (image, question, answer), from a rubric sent with the image.

A judgement is a structured-output request like a question set: its prompt carries the rubric, the
question and the answer, its parameters the JSON schema, so its content key covers the image bytes,
the question, the answer, the judge model and the parameters, and a rerun never pays for it twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vqa_distill.teacher.answers.outcomes import answer_record
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_JUDGE, STATUS_ANSWERED, STATUS_UNUSABLE, TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.questions import QAUnit

MIN_SCORE, MAX_SCORE = 1, 5
SCHEMA_NAME = "answer_judgement"
JUDGE_SYSTEM = "You grade answers about images strictly and fairly. You look at the image before you grade."
RUBRIC = """Grade the answer to the question about this image, from 1 to 5:
5 - correct, complete and specific to what the image shows; nothing invented
4 - correct and useful, with a minor omission or imprecision
3 - partly correct, or vague and generic
2 - mostly wrong, or contradicts the image
1 - wrong, unrelated, or a refusal
Also say whether the question needs the image: false when it can be answered without looking at it."""


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one row."""

    score: int
    needs_image: bool
    reason: str


def judge_prompt(question: str, answer: str) -> str:
    """Compose the rubric, the question and the answer into the judge's prompt."""
    return f"{RUBRIC}\n\nQuestion: {question}\n\nAnswer: {answer}"


def judge_format() -> dict[str, Any]:
    """Return the ``response_format`` (strict JSON schema) of a judgement."""
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": MIN_SCORE, "maximum": MAX_SCORE},
            "needs_image": {"type": "boolean"},
            "reason": {"type": "string"},
        },
        "required": ["score", "needs_image", "reason"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def judge_request(unit: QAUnit, question: str, answer: str, params: TeacherParams) -> TeacherRequest:
    """Return the request that scores one answer (``params.judge_model`` must be set)."""
    return verdict_request(unit, judge_prompt(question, answer), JUDGE_SYSTEM, judge_format(), params)


def verdict_request(
    unit: QAUnit, prompt: str, system: str, response_format: dict[str, Any], params: TeacherParams
) -> TeacherRequest:
    """A judge's structured-output request about the unit's image: the judge model (else the teacher's)."""
    return TeacherRequest(
        image_path=unit.image_path,
        rel_path=unit.rel_path,
        sha256=unit.sha256,
        prompt=prompt,
        system=system,
        model=params.judge_model or params.model,
        params={**params.generation_params(), "response_format": response_format},
    )


def json_object(text: str) -> dict[str, Any] | str:
    """The JSON object a verdict is, or why it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"not JSON ({exc})"
    return data if isinstance(data, dict) else "not a JSON object"


def parse_judgement(text: str) -> Judgement | str:
    """Read a judgement; return why it cannot be used instead when it is not one."""
    data = json_object(text)
    if isinstance(data, str):
        return data
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        return f"score {score!r} is not an integer from {MIN_SCORE} to {MAX_SCORE}"
    needs_image = data.get("needs_image", True)
    return Judgement(score, needs_image is not False, str(data.get("reason") or ""))


def judge_record(
    request: TeacherRequest, answer: TeacherAnswer, *, attempts: int, flow_run_id: str | None, started_at: str
) -> TeacherRecord:
    """Record a judgement; unusable (with why) when it holds no valid score."""
    record = answer_record(request, answer, attempts=attempts, flow_run_id=flow_run_id, started_at=started_at)
    return checked_verdict(record, parse_judgement, error_class="UnusableJudgement", what="judgement")


def checked_verdict(
    record: TeacherRecord, parse: Callable[[str], object], *, error_class: str, what: str
) -> TeacherRecord:
    """File an answered record as a judge's; unusable (with why) when ``parse`` says it is no verdict (a str)."""
    record.kind = KIND_JUDGE
    if record.status == STATUS_ANSWERED:
        verdict = parse(record.answer or "")
        if isinstance(verdict, str):
            record.status = STATUS_UNUSABLE
            record.error_class = error_class
            record.error_message = f"invalid {what}: {verdict}"
    return record
