"""Doubted pool images: the student's least sure answers first, a degenerate answer the least sure of all."""

from __future__ import annotations

import json
from pathlib import Path

from vqa_distill.loop.doubt import LEAST_SURE, Doubt, most_doubted, read_doubts

SHAS = [c * 64 for c in "abcdef"]


def _answers(tmp_path: Path, lines: list[dict[str, object]]) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    return path


def test_least_sure_first_and_a_degenerate_or_unscored_answer_before_any_real_one(tmp_path: Path) -> None:
    path = _answers(tmp_path, [
        {"index": 0, "response": "A red tile with a crack in the corner.", "logprob": -0.4},
        {"index": 1, "response": "A blue tile, chipped along the top edge.", "logprob": -2.5},
        {"index": 2, "response": "the the the the the the the the", "logprob": -0.01},  # sure, but a loop
        {"index": 3, "response": "", "logprob": -0.2},
        {"index": 4, "response": "A grey tile without visible defects.", "logprob": None},
        {"index": 5, "response": "A green tile, scratched in the middle.", "logprob": -1.0},
    ])  # fmt: skip
    doubts = read_doubts(path, SHAS)
    assert [d.sha256 for d in doubts[:3]] == sorted([SHAS[2], SHAS[3], SHAS[4]])  # ties broken by hash
    assert all(d.sureness == LEAST_SURE for d in doubts[:3])
    assert [(d.sha256, d.sureness) for d in doubts[3:]] == [(SHAS[1], -2.5), (SHAS[5], -1.0), (SHAS[0], -0.4)]
    assert doubts[4].answer == "A green tile, scratched in the middle."


def test_most_doubted_takes_each_image_once_up_to_the_count() -> None:
    doubts = [
        Doubt(SHAS[0], "x", -3.0),
        Doubt(SHAS[0], "y", -2.0),
        Doubt(SHAS[1], "z", -1.0),
        Doubt(SHAS[2], "w", 0.0),
    ]
    assert most_doubted(doubts, 2) == [SHAS[0], SHAS[1]]
    assert most_doubted(doubts, 10) == [SHAS[0], SHAS[1], SHAS[2]]
    assert most_doubted([], 3) == []
