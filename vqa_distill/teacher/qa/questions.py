"""Questions the teacher writes about an image, then answers one by one: the requests and the question list.

A question set is one structured-output request per image x prompt: N distinct questions of a style
(LLaVA's conversation, detailed description and complex reasoning, or a mix), guided by the user's
prompt. It is an ordinary ``TeacherRequest`` whose prompt is the composed instruction (carrying the
prompt, style and N) and whose parameters carry the JSON schema, so its content key covers the image
bytes, prompt, style, N, model and parameters. Each question then becomes its own request: the image,
the question and the system prompt, keyed exactly like a prompt would be.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vqa_distill.teacher.answers.outcomes import answer_record
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_QUESTIONS, STATUS_ANSWERED, STATUS_UNUSABLE, TeacherRecord
from vqa_distill.teacher.params import QuestionStyle, TeacherParams

KINDS = ("conversation", "detail", "reasoning")
KIND_GUIDES = {
    "conversation": "a short, direct question about what is visible (objects, colours, counts, positions, "
    "states) that has one clear answer",
    "detail": "a request for a detailed description of the image or of one part of it",
    "reasoning": "a question that needs reasoning from what is visible (causes, purposes, consequences, "
    "comparisons) and cannot be answered without looking at the image",
}
QUESTION_SYSTEM = (
    "You write questions about images, to train a vision-language assistant. Every question must be "
    "answerable only by looking at the image and specific to what this image shows; it must not contain "
    "or suggest its answer, and it must ask something the other questions do not."
)
SCHEMA_NAME = "image_questions"


@dataclass(frozen=True)
class QAUnit:
    """One image (its first file with these bytes) and one user prompt: what a question set is asked about."""

    image_path: str
    rel_path: str
    sha256: str
    prompt: str


@dataclass(frozen=True)
class Question:
    """One question of a set: its 1-based position in the teacher's list, its kind and its text."""

    index: int
    kind: str
    text: str


@dataclass(frozen=True)
class QuestionSet:
    """The questions read from a teacher's list, and why the list is unusable or short (None: complete)."""

    questions: list[Question]
    problem: str | None = None


def kinds_for(style: QuestionStyle, count: int) -> list[str]:
    """Return the kind of each of ``count`` questions: the style's own, or the three kinds in turn."""
    if style == "mixed":
        return [KINDS[i % len(KINDS)] for i in range(count)]
    return [style] * count


def question_prompt(prompt: str, style: QuestionStyle, count: int) -> str:
    """Compose the instruction that asks for ``count`` questions of ``style``, guided by the user's prompt."""
    kinds = Counter(kinds_for(style, count))
    lines = [f"Write {count} distinct questions about this image:"]
    lines += [f'- {n} of kind "{kind}": {KIND_GUIDES[kind]}' for kind, n in kinds.items()]
    lines += [f"Focus: {prompt}", "Write the questions in the language of the focus text."]
    return "\n".join(lines)


def questions_format(style: QuestionStyle, count: int) -> dict[str, Any]:
    """Return the ``response_format`` (strict JSON schema) of a list of exactly ``count`` questions."""
    kinds = [kind for kind in KINDS if kind in set(kinds_for(style, count))]
    item = {
        "type": "object",
        "properties": {"kind": {"type": "string", "enum": kinds}, "question": {"type": "string"}},
        "required": ["kind", "question"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": item, "minItems": count, "maxItems": count}},
        "required": ["questions"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def question_request(unit: QAUnit, params: TeacherParams) -> TeacherRequest:
    """Return the request for the question set of ``unit`` (``params.questions`` must be set)."""
    count = params.questions or 1
    return TeacherRequest(
        image_path=unit.image_path,
        rel_path=unit.rel_path,
        sha256=unit.sha256,
        prompt=question_prompt(unit.prompt, params.question_style, count),
        system=QUESTION_SYSTEM,
        model=params.model,
        params={**params.generation_params(), "response_format": questions_format(params.question_style, count)},
    )


def answer_request(unit: QAUnit, question: str, params: TeacherParams) -> TeacherRequest:
    """Return the request that answers one question about the unit's image, as a prompt would be asked."""
    return TeacherRequest(
        image_path=unit.image_path,
        rel_path=unit.rel_path,
        sha256=unit.sha256,
        prompt=question,
        system=params.system,
        model=params.model,
        params=params.generation_params(),
    )


def parse_questions(text: str, count: int) -> QuestionSet:
    """Read a teacher's question list (the schema's object, or a bare list); at most ``count`` questions."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return QuestionSet([], f"not JSON ({exc})")
    items = data.get("questions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return QuestionSet([], "no 'questions' list in the JSON")
    questions: list[Question] = []
    for position, item in enumerate(items[:count], start=1):
        kind, question = ("", item) if isinstance(item, str) else ("", None)
        if isinstance(item, dict):
            kind, question = str(item.get("kind") or ""), item.get("question")
        if isinstance(question, str) and question.strip():
            questions.append(Question(position, kind, " ".join(question.split())))
    if not questions:
        return QuestionSet([], "the list holds no question")
    if len(questions) < count:
        return QuestionSet(questions, f"short list: {len(questions)} of {count} questions")
    return QuestionSet(questions)


def question_set_record(
    request: TeacherRequest,
    answer: TeacherAnswer,
    *,
    count: int,
    attempts: int,
    flow_run_id: str | None,
    started_at: str,
) -> TeacherRecord:
    """Record a question list: unusable (with why) when it holds no question; a short list is used and noted."""
    record = answer_record(request, answer, attempts=attempts, flow_run_id=flow_run_id, started_at=started_at)
    record.kind = KIND_QUESTIONS
    if record.status != STATUS_ANSWERED:
        return record
    parsed = parse_questions(record.answer or "", count)
    if not parsed.questions:
        record.status = STATUS_UNUSABLE
        record.error_class = "UnusableQuestions"
        record.error_message = f"invalid question list: {parsed.problem}"
    elif parsed.problem:
        record.error_class = "ShortQuestionList"
        record.error_message = parsed.problem
    return record
