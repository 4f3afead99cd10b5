"""Evaluation that says when it means nothing: degenerate answers flagged per row, warned about, shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqa_distill.student.evaluate import EvalRow, score, write_eval_rows
from vqa_distill.student.metrics import degenerate_reason
from vqa_distill.student.report import eval_markdown
from vqa_distill.student.training import EVAL_DIR, EVAL_PREDICTIONS, EVAL_ROWS, read_evaluation

TEACHER = "Overall: The image is a landscape 640x480 picture, almost entirely blue."


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("\n\n\n", "whitespace"),
        ("   \t \n", "whitespace"),
        ("the the the", "repeated"),
        ("The the THE the", "repeated"),
        ("....................", "repeated"),
        ("<|unused_58108|><|unused_58108|><|unused_58108|><|unused_5", "repeated"),  # one token, cut off
        ("\n\n\n\n<|unused_7|><|unused_7|><|unused_7|>", "repeated"),  # newlines, then one token
        ("landscape landscape landscape landscape", "repeated"),
        ("1 1 1 1 1", "repeated"),
        ("ab ab ab", "repeated"),
        ("?!", "no words"),
        ("是是是", "repeated"),
    ],
)
def test_degenerate_answers_are_named(answer: str, reason: str) -> None:
    assert degenerate_reason(answer) == reason


@pytest.mark.parametrize(
    "answer",
    [
        TEACHER,
        "No.",
        "Yes",
        "the the",  # two repeats: a stutter, not a loop
        "ab ab",
        "Overall: The image is a landscapescapescapescape gray. It looks brightness 1 1 1 1 19/2555555",
        "这是一个蓝色的表面。",
    ],
)
def test_real_answers_are_not_degenerate(answer: str) -> None:
    assert degenerate_reason(answer) is None


def _rows(count: int) -> list[EvalRow]:
    return [
        EvalRow([{"role": "user", "content": "<image>What colour is this surface?"}], [f"/img/{i}.png"], TEACHER)
        for i in range(count)
    ]


def test_a_degenerate_base_is_flagged_in_the_table_summary_and_warnings() -> None:
    report = score(_rows(3), [TEACHER, "the the the", TEACHER], ["\n\n\n", "", "\n" * 40 + "<|unused_1|>" * 9])
    table = report.table()
    assert set(table[0]) == {
        "row", "image", "prompt", "teacher", "student", "student_rougeL", "student_degenerate", "base",
        "base_rougeL", "base_degenerate",
    }  # fmt: skip
    assert [r["base_degenerate"] for r in table] == ["whitespace", "empty", "repeated"]
    assert [r["student_degenerate"] for r in table] == ["", "repeated", ""]
    assert [r["base_rougeL"] for r in table] == [0.0, 0.0, 0.0] and table[0]["student_rougeL"] == 1.0
    assert report.summary() | {"student_rougeL": None} == {
        "eval_rows": 3, "student_rougeL": None, "base_rougeL": 0.0, "student_degenerate": 1, "base_degenerate": 3,
    }  # fmt: skip
    assert report.warnings() == [
        "base answers are degenerate (3/3 empty or repeated or whitespace): its ROUGE-L says nothing",
        "student answers are degenerate (1/3 repeated): its ROUGE-L on those rows says nothing",
    ]


def test_sound_answers_give_no_warning_and_no_base_gives_no_base_columns() -> None:
    report = score(_rows(2), [TEACHER, "The image is blue."], None)
    assert report.warnings() == []
    assert "base" not in report.table()[0] and "base_degenerate" not in report.table()[0]
    assert report.summary()["base_degenerate"] is None
    assert "Warning" not in eval_markdown(report)


def test_the_artifact_description_warns_and_shows_rows_side_by_side() -> None:
    report = score(_rows(4), [TEACHER] * 4, ["\n\n\n"] * 4)
    markdown = eval_markdown(report)
    lines = markdown.splitlines()
    assert lines[0] == "ROUGE-L against the teacher on 4 validation row(s): student **1.0**, base model 0.0."
    assert "**Warning:** base answers are degenerate (4/4 whitespace): its ROUGE-L says nothing." in lines
    assert "| image | teacher | student | base |" in lines
    examples = [line for line in lines if line.startswith("| 0.png") or line.startswith("| 1.png")]
    assert len(examples) == 2 and "Side by side, 3 of 4 row(s):" in lines
    # The base's newlines are visible, and flagged, rather than a blank cell.
    assert examples[0].endswith(r"| \n\n\n *(whitespace)* |")


def test_read_evaluation_scores_the_files_evaluate_left(tmp_path: Path) -> None:
    rows = _rows(2)
    eval_dir = tmp_path / EVAL_DIR
    write_eval_rows(rows, eval_dir / EVAL_ROWS)
    answers = [("base", 0, "\n"), ("base", 1, "\n"), ("student", 1, "The image is blue."), ("student", 0, TEACHER)]
    (eval_dir / EVAL_PREDICTIONS).write_text(
        "".join(json.dumps({"model": m, "index": i, "response": r}) + "\n" for m, i, r in answers), encoding="utf-8"
    )
    report = read_evaluation(tmp_path)
    assert report is not None
    assert report.student == [TEACHER, "The image is blue."] and report.base == ["\n", "\n"]
    assert report.student_scores[0] == 1.0 and report.base_rouge_l == 0.0
    assert read_evaluation(tmp_path / "elsewhere") is None
