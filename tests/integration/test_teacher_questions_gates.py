"""The quality gates through the real client: refusals, repeated questions, boilerplate answers, the judge.

Faults of the offline teacher, matched by picture size, make one image's answers refusals, another's
question list repeat itself, two images get the same boilerplate answer, and the judge score one image
low and say another's questions need no image. Every row left out is in rejected.jsonl with its reason,
counted in the ``teacher-quality`` artifact; scores are cached like answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.helpers import make_image
from tests.support.qa_helpers import (
    asked,
    count_of,
    qa_images,
    qa_params,
    read_artifacts,
    read_jsonl_lines,
    records_of,
)
from vqa_distill.cli.flow_runs import run_generate_flow

FAULTS = [
    {"kind": "refuse", "match_image_size": "80x60"},
    {"kind": "duplicate_questions", "match_image_size": "56x56"},
    {"kind": "low_score", "match_image_size": "96x64"},
    {"kind": "canned_answer", "match_image_size": "48x64"},
    {"kind": "imageless", "match_image_size": "100x75"},
]


def test_refusals_duplicates_and_low_scores_are_left_out_with_reasons(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    qa_images(tmp_path / "images", 7, prefix="gate")
    make_image(tmp_path / "images" / "gate_07.png", (250, 250, 250), (48, 64))  # a second boilerplate picture
    teacher.set_faults(FAULTS)
    # The boilerplate names nothing of its picture, so the judge grades it 2: --min-score 2 lets it through to
    # the duplicate-answer gate, while the low_score fault's 1s are still left out.
    params = qa_params(
        tmp_path / "images", tmp_path / "out", teacher.base_url, judge_model="gpt-4o", min_score=2
    )
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0

    rejected = read_jsonl_lines(tmp_path / "out" / "rejected.jsonl")
    reasons = Counter(line["reason"] for line in rejected)
    assert reasons == {
        "refusal": 3, "duplicate question": 2, "low score": 3, "duplicate answer": 5, "question needs no image": 3,
    }  # fmt: skip
    by_reason = {line["reason"]: line for line in rejected}
    assert by_reason["refusal"]["image"].endswith("gate_02.png") and "sorry" in by_reason["refusal"]["detail"]
    assert by_reason["duplicate question"]["detail"].startswith("repeats #1")
    assert by_reason["low score"]["score"] == 1 and "< --min-score 2" in by_reason["low score"]["detail"]
    assert by_reason["duplicate answer"]["detail"].startswith("same as")
    rows = read_jsonl_lines(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 2 * 3 + 1 + 1  # two clean images, the repeated list's first question, one boilerplate

    # Repeated questions are never answered; refusals are never judged.
    requests = asked(teacher.stats())
    judge_calls = [r for r in requests if r[2] == "gpt-4o"]
    assert len(judge_calls) == 19  # 24 questions - 2 repeats - 3 refusals
    assert len(requests) == 8 + (24 - 2) + 19
    scores = [r for r in records_of(tmp_path / "out", "judge") if r.status == "answered"]
    assert len(scores) == 19

    artifacts = read_artifacts(outcome.flow_run_id or "")
    quality = artifacts["teacher-quality"]
    assert count_of(quality, "kept") == 8
    assert count_of(quality, "left out: refusal") == 3
    assert count_of(quality, "left out: duplicate answer") == 5
    assert count_of(quality, "left out: low score") == 3
    assert count_of(quality, "1") == 3  # the score histogram: three rows scored 1
    assert count_of(quality, "2") == 6  # the two boilerplate pictures' answers
    assert sum(count_of(quality, str(score)) or 0 for score in range(1, 6)) == 19
    assert "review.html" in artifacts["teacher-review"]
    page = (tmp_path / "out" / "review.html").read_text(encoding="utf-8")
    assert "left out: refusal" in page and "score 1/5" in page

    # A rerun pays for no question list, answer or score twice.
    teacher.reset()
    again = run_generate_flow(params, show_progress=False)
    assert again.summary is not None and again.summary.answered_now == 0
    assert teacher.stats()["totals"]["requests"] == 0
    assert read_jsonl_lines(tmp_path / "out" / "rejected.jsonl") == rejected
