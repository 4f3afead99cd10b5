"""The offline teacher's structured outputs: a valid instance of any schema, its own questions, answers, scores."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from PIL import Image

from vqa_distill.dataset.similarity import near_duplicate_questions, normalize
from vqa_distill.offline_teacher.replies.answers import measure
from vqa_distill.offline_teacher.replies.questions import FILLERS, combined, own_answer, own_questions
from vqa_distill.offline_teacher.replies.reply import PURPOSE_JUDGE, PURPOSE_QUESTIONS, purpose_of, reply
from vqa_distill.offline_teacher.replies.structured import (
    ResponseFormat,
    instance_of,
    response_format_of,
    strict_problem,
)
from vqa_distill.offline_teacher.rules.schema import ChatRequest
from vqa_distill.offline_teacher.server.faults import FaultInjector, FaultRule, RequestView

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
    {"type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 6},
    {"type": "array", "items": {"type": "integer", "minimum": 3, "maximum": 9}, "minItems": 5, "uniqueItems": True},
    {"type": "array", "items": {"type": "number"}, "maxItems": 0},
    {"type": "integer", "minimum": 1, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 12},
    {"type": "integer", "maximum": -7},
    {"type": "integer", "minimum": 4, "multipleOf": 5},
    {"type": "number", "minimum": 0.1, "maximum": 0.2},
    {"type": "number", "exclusiveMinimum": 2},
    {"type": "number", "exclusiveMaximum": -1.5},
    {"type": "string", "enum": ["low", "high"]},
    {"type": "string", "minLength": 30, "maxLength": 31},
    {"type": "string", "maxLength": 2},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["string", "null"]},
    {"const": "fixed"},
    {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 2}]},
    {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "boolean"}]},
    {"allOf": [{"type": "object", "properties": {"x": {"type": "boolean"}}}, {"required": ["x", "y"]}]},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False, "minItems": 2},
    {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "type": "object",
        "properties": {"points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 3}},
        "required": ["points"],
    },
    {
        "type": "object",
        "properties": {
            "nested": {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"enum": [1, "two", None]}, "minItems": 3}},
                "required": ["tags"],
                "additionalProperties": False,
            }
        },
        "required": ["nested"],
        "additionalProperties": False,
    },
    {},
]


def _picture(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48)) -> Any:
    return measure(Image.new("RGB", size, colour), *size)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_schema_gets_a_valid_instance(schema: dict[str, Any]) -> None:
    jsonschema.validate(instance_of(schema), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_fillers_keep_any_schema_valid(schema: dict[str, Any]) -> None:
    fill = combined(*(make(_picture(), "Write 5 distinct questions", None) for make in FILLERS))
    jsonschema.validate(instance_of(schema, fill), schema, cls=jsonschema.Draft202012Validator)


def test_strict_schemas_must_close_every_object_and_require_every_property() -> None:
    closed = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}
    assert strict_problem(closed) is None
    assert "additionalProperties" in (strict_problem({**closed, "additionalProperties": True}) or "")
    assert "Missing 'a'" in (strict_problem({**closed, "required": []}) or "")
    nested = {**closed, "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}
    assert "context=('properties', 'a')" in (strict_problem(nested) or "")
    assert "root" in (strict_problem({"type": "array", "items": {"type": "string"}}) or "")


def test_a_request_s_response_format_is_read_or_refused() -> None:
    def fmt(value: Any) -> Any:
        return response_format_of(ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                                              "response_format": value}))  # fmt: skip

    schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    read = fmt({"type": "json_schema", "json_schema": {"name": "ok", "strict": True, "schema": schema}})
    assert isinstance(read, ResponseFormat) and read.strict and read.schema == schema
    assert fmt({"type": "json_object"}) == ResponseFormat(type="json_object")
    assert "Invalid value" in fmt({"type": "xml"})
    assert "name" in fmt({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": schema}})
    assert "additionalProperties" in fmt(
        {"type": "json_schema", "json_schema": {"name": "s", "strict": True, "schema": {"type": "object", "properties": {}}}}
    )


def test_own_questions_are_distinct_deterministic_and_about_the_picture() -> None:
    red, blue = _picture((200, 30, 30)), _picture((40, 90, 210), (80, 60))
    kinds = ["conversation", "detail", "reasoning"] * 3
    questions = own_questions(red, "prompt A", kinds)
    assert questions == own_questions(red, "prompt A", kinds)
    assert len({normalize(q) for q in questions}) == 9 and near_duplicate_questions(questions) == {}
    assert own_questions(blue, "prompt A", kinds) != questions
    assert any("red" in q for q in own_questions(red, "p", ["conversation"] * 8))
    repeated = own_questions(red, "prompt A", kinds[:4], repeat=True)
    assert set(near_duplicate_questions(repeated)) == {1, 2, 3}


def test_own_questions_are_answered_from_the_same_picture() -> None:
    red = _picture()
    for question in own_questions(red, "anything", ["conversation", "detail", "reasoning"] * 6):
        answer = own_answer(red, question)
        assert answer is not None and "64x48" in answer
    assert own_answer(red, "What is the meaning of life?") is None
    blue = _picture((40, 90, 210), (80, 60))
    for question in own_questions(red, "x", ["conversation"] * 8):  # asked of another picture: its own facts
        other = own_answer(blue, question)
        assert other is None or ("80x60" in other and "64x48" not in other)


def test_judge_scores_are_deterministic_and_faults_lower_them() -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "needs_image": {"type": "boolean"},
                       "reason": {"type": "string"}},
        "required": ["score", "needs_image", "reason"], "additionalProperties": False,
    }  # fmt: skip
    red = _picture()

    def judged(answer: str, fault: str | None = None) -> Any:
        return instance_of(schema, combined(*(make(red, f"Question: q\n\nAnswer: {answer}", fault) for make in FILLERS)))

    assert judged("The tile is red.") == judged("The tile is red.")
    # Graded by the picture's facts named (colour, size, ...) and those got wrong (another colour).
    assert judged("The 64x48 tile is red.")["score"] == 5 and judged("The tile is red.")["score"] == 4
    assert judged("The tile is red with blue spots.")["score"] == 3  # a fact and a wrong one
    assert judged("It is answered.")["score"] == 2
    assert judged("The tile is blue.")["score"] == 1 and judged("  ")["score"] == 1
    assert "names 1 of its facts (main colour red) and gets 0 wrong" in judged("The tile is red.")["reason"]
    assert judged("The tile is red.", "low_score")["score"] == 1
    assert judged("x", "imageless")["needs_image"] is False and judged("x")["needs_image"] is True


def test_content_faults_apply_to_their_kind_of_request_only() -> None:
    injector = FaultInjector([FaultRule(kind="refuse", times=1), FaultRule(kind="low_score")])
    questions = RequestView(model="m", user_text="t", system="", purpose=PURPOSE_QUESTIONS)
    judge = RequestView(model="m", user_text="t", system="", purpose=PURPOSE_JUDGE)
    assert injector.pick(questions) is None  # a refusal is for plain answers, a low score for judges
    assert injector.pick(judge).kind == "low_score"  # type: ignore[union-attr]
    assert injector.pick(RequestView(model="m", user_text="t", system="")).kind == "refuse"  # type: ignore[union-attr]
    fmt = ResponseFormat(type="json_schema", name="n", schema={"type": "object", "properties": {"score": {}}})
    assert purpose_of(fmt) == PURPOSE_JUDGE and purpose_of(ResponseFormat()) == "text"
    assert reply(ResponseFormat(), [_picture()], "Describe it.", "", FaultRule(kind="refuse")).startswith("I'm sorry")
