"""The pairwise judge without a server: its prompt, schema, verdicts and records; the offline judge's reading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from vqa_distill.offline_teacher.replies.answers import ImageFeatures, measure
from vqa_distill.offline_teacher.replies.pairwise import answers_compared, compare, grade, read_answer
from vqa_distill.offline_teacher.replies.questions import FILLERS, combined
from vqa_distill.offline_teacher.replies.reply import PURPOSE_COMPARE, purpose_of
from vqa_distill.offline_teacher.replies.structured import ResponseFormat, instance_of, strict_problem
from vqa_distill.offline_teacher.server.faults import FaultInjector, FaultRule, RequestView
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.ledger.records import KIND_JUDGE, STATUS_ANSWERED, STATUS_UNUSABLE
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.pairwise import (
    PAIRWISE_SYSTEM,
    PairwiseVerdict,
    pairwise_format,
    pairwise_prompt,
    pairwise_record,
    pairwise_request,
    parse_pairwise,
)
from vqa_distill.teacher.qa.questions import QAUnit

QUESTION = "What colour is the tile?"
RIGHT = "The 64x48 tile is red all over."
WRONG = "The tile is blue with green stripes."


def _answer(text: str, finish_reason: str | None = "stop") -> TeacherAnswer:
    return TeacherAnswer(
        text=text, finish_reason=finish_reason, prompt_tokens=10, completion_tokens=5, latency_s=0.1
    )


def _params(tmp_path: Path, **overrides: Any) -> TeacherParams:
    values: dict[str, Any] = {
        "images": str(tmp_path),
        "out": str(tmp_path / "out"),
        "questions": 3,
        "judge_model": "gpt-4o",
    }
    return TeacherParams(**{**values, **overrides})


def _unit() -> QAUnit:
    return QAUnit("/pics/tile.png", "tile.png", "ab" * 32, prompt="")


def _red(size: tuple[int, int] = (64, 48)) -> ImageFeatures:
    return measure(Image.new("RGB", size, (200, 30, 30)), *size)


# ----------------------------------------------------------------------------- the client's request


def test_the_prompt_shows_the_question_then_both_answers_in_order() -> None:
    prompt = pairwise_prompt(QUESTION, RIGHT, WRONG)
    assert (
        prompt.index(f"Question: {QUESTION}")
        < prompt.index(f"Answer A:\n{RIGHT}")
        < prompt.index(f"Answer B:\n{WRONG}")
    )
    assert "tie" in prompt and "Length alone is no merit" in prompt


def test_the_schema_is_strict_and_names_a_winner_and_a_reason() -> None:
    fmt = pairwise_format()
    spec = fmt["json_schema"]
    assert (fmt["type"], spec["name"], spec["strict"]) == ("json_schema", "answer_comparison", True)
    assert strict_problem(spec["schema"]) is None  # the API would accept it
    assert spec["schema"]["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"winner": "C", "reason": ""}, spec["schema"])


def test_the_request_is_keyed_by_the_order_of_the_answers(tmp_path: Path) -> None:
    params = _params(tmp_path, temperature=0.0)
    forwards = pairwise_request(_unit(), QUESTION, RIGHT, WRONG, params)
    assert forwards.model == "gpt-4o" and forwards.system == PAIRWISE_SYSTEM
    assert forwards.params == {**params.generation_params(), "response_format": pairwise_format()}
    assert forwards.key == pairwise_request(_unit(), QUESTION, RIGHT, WRONG, params).key
    assert forwards.key != pairwise_request(_unit(), QUESTION, WRONG, RIGHT, params).key
    no_judge = _params(tmp_path, judge_model=None, model="gpt-4o-mini")
    assert pairwise_request(_unit(), QUESTION, RIGHT, WRONG, no_judge).model == "gpt-4o-mini"


@pytest.mark.parametrize("winner", ["A", "B", "tie"])
def test_a_valid_verdict_is_read_and_recorded(tmp_path: Path, winner: str) -> None:
    text = json.dumps({"winner": winner, "reason": "names the colour"})
    assert parse_pairwise(text) == PairwiseVerdict(winner, "names the colour")  # type: ignore[arg-type]
    request = pairwise_request(_unit(), QUESTION, RIGHT, WRONG, _params(tmp_path))
    record = pairwise_record(request, _answer(text), attempts=2, flow_run_id="run", started_at="t")
    assert (record.kind, record.status, record.attempts, record.key) == (
        KIND_JUDGE,
        STATUS_ANSWERED,
        2,
        request.key,
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON"),
        ('["A"]', "not a JSON object"),
        ('{"winner": "C", "reason": ""}', "winner 'C' is not one of A, B, tie"),
        ('{"winner": "a", "reason": ""}', "winner 'a'"),
        ('{"reason": "no winner"}', "winner None"),
    ],
)
def test_an_unusable_verdict_says_why(tmp_path: Path, text: str, why: str) -> None:
    problem = parse_pairwise(text)
    assert isinstance(problem, str) and why in problem
    request = pairwise_request(_unit(), QUESTION, RIGHT, WRONG, _params(tmp_path))
    record = pairwise_record(request, _answer(text), attempts=1, flow_run_id=None, started_at="t")
    assert (record.kind, record.status, record.error_class) == (
        KIND_JUDGE,
        STATUS_UNUSABLE,
        "UnusableComparison",
    )
    assert record.error_message is not None and why in record.error_message


def test_a_cut_off_verdict_is_unusable_as_any_answer(tmp_path: Path) -> None:
    request = pairwise_request(_unit(), QUESTION, RIGHT, WRONG, _params(tmp_path))
    record = pairwise_record(
        request, _answer('{"winner": "A"', "length"), attempts=1, flow_run_id=None, started_at="t"
    )
    assert (record.status, record.error_class) == (STATUS_UNUSABLE, "UnusableAnswer")


# ----------------------------------------------------------------------------- the offline judge


def test_the_offline_judge_counts_facts_named_and_facts_wrong() -> None:
    red = _red()
    right = read_answer(red, "A smooth, landscape 64x48 picture, almost entirely red, with low contrast.")
    assert (
        set(right.named) == {"main colour red", "size", "texture", "orientation", "contrast"}
        and not right.wrong
    )
    wrong = read_answer(red, "A portrait 100x200 picture, taller than it is wide, in blue and light grey.")
    assert set(wrong.wrong) == {"colour blue", "colour light gray", "size 100x200", "orientation portrait"}
    assert read_answer(_red((48, 48)), "The square tile is dark gray.").named == ("orientation",)  # no "dark"
    assert [grade(read_answer(red, text)) for text in (RIGHT, "It is red.", "Red, not blue.", "Hm.", WRONG, "")] == [
        5, 4, 3, 2, 1, 1,
    ]  # fmt: skip


def test_the_offline_comparison_ignores_the_order_and_ties_equals() -> None:
    red = _red()
    assert compare(red, RIGHT, WRONG)[0] == "A" and compare(red, WRONG, RIGHT)[0] == "B"
    assert compare(red, RIGHT, RIGHT)[0] == "tie" and compare(red, WRONG, "It is green and blue.")[0] == "tie"
    assert compare(red, "It is red.", "It is red, and large.")[0] == "tie"  # length alone is no merit
    assert compare(red, "It is red.", "It is red and blue, 64x48.")[0] == "A"  # an invented fact costs more
    _, reason = compare(red, RIGHT, WRONG)
    assert "A names 2 of its facts (main colour red, size)" in reason and "gets 2 wrong" in reason


def test_the_offline_filler_reads_the_pair_from_the_prompt_and_faults_leave_it_alone() -> None:
    red, schema = _red(), pairwise_format()["json_schema"]["schema"]
    assert answers_compared(pairwise_prompt(QUESTION, RIGHT, "two\nlines")) == (RIGHT, "two\nlines")

    def verdict(first: str, second: str, fault: str | None = None) -> Any:
        fill = combined(*(make(red, pairwise_prompt(QUESTION, first, second), fault) for make in FILLERS))
        return instance_of(schema, fill)

    assert verdict(RIGHT, WRONG)["winner"] == "A" and verdict(WRONG, RIGHT)["winner"] == "B"
    assert verdict(RIGHT, WRONG) == verdict(RIGHT, WRONG) == verdict(RIGHT, WRONG, "low_score")
    jsonschema.validate(verdict(RIGHT, WRONG), schema)
    assert (
        instance_of(schema, combined(*(make(red, "no pair here", None) for make in FILLERS)))["winner"]
        == "tie"
    )
    fmt = ResponseFormat(type="json_schema", name="answer_comparison", schema=schema, strict=True)
    assert purpose_of(fmt) == PURPOSE_COMPARE
    injector = FaultInjector([FaultRule(kind="low_score"), FaultRule(kind="imageless")])
    assert injector.pick(RequestView(model="m", user_text="t", system="", purpose=PURPOSE_COMPARE)) is None
