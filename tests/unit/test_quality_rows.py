"""Questions mode without a server: question lists, content keys, the gates over a ledger, the rows they make."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vqa_distill.dataset.pictures import Source, copy_path, teacher_budget
from vqa_distill.dataset.qa_build import build_qa_dataset
from vqa_distill.dataset.rows import make_conversation_row, row_problems
from vqa_distill.errors import ConfigError
from vqa_distill.offline_teacher.replies.structured import strict_problem
from vqa_distill.student.preflight import check_file
from vqa_distill.teacher.answers.outcomes import answer_record
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.endpoint.request import request_key
from vqa_distill.teacher.images.discovery import file_sha256
from vqa_distill.teacher.ledger.records import (
    KIND_ANSWER,
    KIND_JUDGE,
    KIND_QUESTIONS,
    STATUS_ANSWERED,
    STATUS_UNUSABLE,
    Ledger,
)
from vqa_distill.teacher.params import TeacherParams, build_params
from vqa_distill.teacher.qa.judge import judge_format, judge_record, judge_request, parse_judgement
from vqa_distill.teacher.qa.plan import plan_questions, units_of
from vqa_distill.teacher.qa.questions import (
    QAUnit,
    answer_request,
    kinds_for,
    parse_questions,
    question_request,
    question_set_record,
    questions_format,
)

QUESTIONS = ["What colour is the tile?", "What is the colour of the tile?", "Is the tile cracked?", "Where is the dent?"]
ANSWERS = {
    "What colour is the tile?": "The tile is a deep red all over, with a slightly lighter rim along its edges.",
    "Is the tile cracked?": "I'm sorry, but I can't help with that.",
    "Where is the dent?": "The dent sits in the lower right corner, roughly a tenth of the tile's width.",
}


def _answer(text: str) -> TeacherAnswer:
    return TeacherAnswer(text=text, finish_reason="stop", prompt_tokens=10, completion_tokens=5, latency_s=0.1)


def _params(tmp_path: Path, **overrides: Any) -> TeacherParams:
    values: dict[str, Any] = {
        "images": str(tmp_path / "images"), "out": str(tmp_path / "out"), "prompts": ["Focus on defects."],
        "questions": 4, "system": "Be brief.", "review": 10,
    }  # fmt: skip
    values.update(overrides)
    return TeacherParams(**values)


def _unit(tmp_path: Path) -> QAUnit:
    path = tmp_path / "images" / "tile.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (180, 20, 20)).save(path)
    return QAUnit(str(path), "tile.png", file_sha256(path), "Focus on defects.")


def _fill_ledger(ledger: Ledger, unit: QAUnit, params: TeacherParams, scores: dict[str, int]) -> None:
    """Record what a run would: the question list, each answer, and a judgement per judged answer."""
    listed = json.dumps({"questions": [{"kind": "conversation", "question": q} for q in QUESTIONS]})
    ledger.record(
        question_set_record(question_request(unit, params), _answer(listed), count=4, attempts=1, flow_run_id="r",
                            started_at="t")
    )  # fmt: skip
    for question, text in ANSWERS.items():
        ledger.record(answer_record(answer_request(unit, question, params), _answer(text), attempts=1,
                                    flow_run_id="r", started_at="t"))  # fmt: skip
        if question in scores:
            verdict = json.dumps({"score": scores[question], "needs_image": True, "reason": "ok"})
            request = judge_request(unit, question, text, params)
            ledger.record(judge_record(request, _answer(verdict), attempts=1, flow_run_id="r", started_at="t"))


def test_a_question_list_is_read_leniently_and_judged_strictly() -> None:
    full = json.dumps({"questions": [{"kind": "detail", "question": f" Q {i}? "} for i in range(5)]})
    parsed = parse_questions(full, 3)
    assert [q.text for q in parsed.questions] == ["Q 0?", "Q 1?", "Q 2?"] and parsed.problem is None
    assert parse_questions('["A?", "", "B?"]', 3).problem == "short list: 2 of 3 questions"
    assert parse_questions('["A?", "", "B?"]', 3).questions[1].index == 3  # its place in the teacher's list
    assert parse_questions("not json", 3).questions == []
    assert parse_questions('{"questions": []}', 3).problem == "the list holds no question"
    assert kinds_for("mixed", 4) == ["conversation", "detail", "reasoning", "conversation"]
    assert kinds_for("detail", 2) == ["detail", "detail"]


def test_question_lists_and_judgements_are_recorded_with_their_kind(tmp_path: Path) -> None:
    params, unit = _params(tmp_path), _unit(tmp_path)
    request = question_request(unit, params)
    bad = question_set_record(request, _answer("{"), count=4, attempts=1, flow_run_id=None, started_at="t")
    assert (bad.kind, bad.status) == (KIND_QUESTIONS, STATUS_UNUSABLE) and "invalid question list" in (bad.error_message or "")
    short = question_set_record(request, _answer('["A?"]'), count=4, attempts=1, flow_run_id=None, started_at="t")
    assert (short.status, short.error_class) == (STATUS_ANSWERED, "ShortQuestionList")
    judged = judge_request(unit, "Q?", "A.", params.model_copy(update={"judge_model": "gpt-4o"}))
    assert judged.model == "gpt-4o" and judged.params["response_format"] == judge_format()
    bad_score = judge_record(judged, _answer('{"score": 9}'), attempts=1, flow_run_id=None, started_at="t")
    assert (bad_score.kind, bad_score.status) == (KIND_JUDGE, STATUS_UNUSABLE)
    assert parse_judgement('{"score": 4, "needs_image": false, "reason": "general knowledge"}').needs_image is False  # type: ignore[union-attr]


def test_content_keys_cover_what_changes_the_outcome(tmp_path: Path) -> None:
    params, unit = _params(tmp_path), _unit(tmp_path)
    key = question_request(unit, params).key
    for change in ({"questions": 5}, {"question_style": "reasoning"}, {"model": "gpt-4o"}, {"temperature": 0.2}):
        assert question_request(unit, params.model_copy(update=change)).key != key
    assert question_request(unit, params.model_copy(update={"system": "Other."})).key == key  # answers' system only
    # An answer is keyed exactly like the same text asked as a prompt: a question is never paid for twice.
    answer = answer_request(unit, "Is the tile cracked?", params)
    assert answer.key == request_key(sha256=unit.sha256, prompt="Is the tile cracked?", system="Be brief.",
                                     model=params.model, params=params.generation_params())  # fmt: skip


def test_the_schemas_sent_are_valid_strict_schemas() -> None:
    for style in ("mixed", "conversation", "detail", "reasoning"):
        assert strict_problem(questions_format(style, 5)["json_schema"]["schema"]) is None  # type: ignore[arg-type]
    assert strict_problem(judge_format()["json_schema"]["schema"]) is None


def test_question_options_need_questions_and_a_score_needs_a_judge(tmp_path: Path) -> None:
    base = {"images": "i", "out": "o", "prompts": ["p"]}
    with pytest.raises(ConfigError, match="work on generated questions"):
        build_params({**base, "conversation": True})
    with pytest.raises(ConfigError, match="min_score needs judge_model"):
        build_params({**base, "questions": 3, "min_score": 4})
    with pytest.raises(ConfigError):
        build_params({**base, "questions": 0})


def test_the_gates_over_a_ledger_write_rows_rejected_lines_and_the_report(tmp_path: Path) -> None:
    params = _params(tmp_path, judge_model="gpt-4o", min_score=4)
    unit = _unit(tmp_path)
    with Ledger(params.out) as ledger:
        _fill_ledger(ledger, unit, params, scores={"What colour is the tile?": 5, "Where is the dent?": 2})
        plan = plan_questions([], [], params, ledger, None)
        assert plan.jobs == []
        report = build_qa_dataset(ledger, [unit], params)
        assert {r.kind for r in ledger.records()} == {KIND_QUESTIONS, KIND_ANSWER, KIND_JUDGE}
    out = Path(params.out)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert rows == [{
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>What colour is the tile?"},
                     {"role": "assistant", "content": ANSWERS["What colour is the tile?"]}],
        "images": [str(copy_path(out, Source(unit.image_path, unit.sha256, teacher_budget(params.model, params.max_pixels))))],
    }]  # fmt: skip
    rejected = {line["question"]: line for line in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert rejected["What is the colour of the tile?"]["reason"] == "duplicate question"
    assert rejected["Is the tile cracked?"]["reason"] == "refusal"
    assert rejected["Where is the dent?"]["reason"] == "low score" and rejected["Where is the dent?"]["score"] == 2
    assert report.quality is not None and report.quality.kept == 1
    assert report.quality.rejected == {"duplicate question": 1, "refusal": 1, "low score": 1}
    assert report.quality.scores == {5: 1, 2: 1}
    assert report.review_path and "left out: low score" in Path(report.review_path).read_text()


def test_a_missing_judgement_leaves_the_row_out_only_under_min_score(tmp_path: Path) -> None:
    params = _params(tmp_path, judge_model="gpt-4o", min_score=3)
    unit = _unit(tmp_path)
    with Ledger(params.out) as ledger:
        _fill_ledger(ledger, unit, params, scores={})
        report = build_qa_dataset(ledger, [unit], params)
        assert report.quality is not None and report.quality.rejected["not judged"] == 2
        relaxed = build_qa_dataset(ledger, [unit], params.model_copy(update={"min_score": None}))
        assert relaxed.train_rows == 2


def test_conversation_rows_hold_one_image_tag_and_pass_the_preflight(tmp_path: Path) -> None:
    params = _params(tmp_path, conversation=True)
    unit = _unit(tmp_path)
    with Ledger(params.out) as ledger:
        _fill_ledger(ledger, unit, params, scores={})
        report = build_qa_dataset(ledger, [unit], params)
    (row,) = [json.loads(line) for line in Path(report.train_path).read_text().splitlines()]
    users = [m["content"] for m in row["messages"] if m["role"] == "user"]
    assert users == ["<image>What colour is the tile?", "Where is the dent?"]
    assert row_problems(row) == []
    assert check_file(report.train_path, max_length=4096).good_lines == [1]
    three = make_conversation_row(image_path="x.png", turns=[("a?", "A."), ("b?", "B."), ("c?", "C.")])
    assert [m["content"].count("<image>") for m in three["messages"]] == [1, 0, 0, 0, 0, 0]
    assert row_problems(three) == []


def test_units_pair_every_image_with_every_prompt(tmp_path: Path) -> None:
    from vqa_distill.teacher.images.discovery import ImageRef

    refs = [
        ImageRef(path=f"/x/{n}.png", rel_path=f"{n}.png", sha256=n * 64, size_bytes=1, mtime_ns=1, mime="image/png")
        for n in "ab"
    ]
    units = units_of(refs, ["p1", "p2"])
    assert [(u.rel_path, u.prompt) for u in units] == [("a.png", "p1"), ("a.png", "p2"), ("b.png", "p1"), ("b.png", "p2")]
