"""Targeted questions: the student's training losses first, held-out losses only as a kind, on a training image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vqa_distill.loop.targets import Lost, losses_of, targeted_units
from vqa_distill.teacher.images.discovery import ImageRef

HELD, TRAIN_A, TRAIN_B = "h" * 64, "a" * 64, "b" * 64
PROMPT = "Describe the defects."
SECRET = "How many rivets hold the left hinge of the held-out door?"


def _ref(sha: str) -> ImageRef:
    return ImageRef(
        path=f"/data/{sha[0]}.png",
        rel_path=f"{sha[0]}.png",
        sha256=sha,
        size_bytes=10,
        mtime_ns=0,
        mime="image/png",
    )


IMAGES = {sha: _ref(sha) for sha in (HELD, TRAIN_A, TRAIN_B)}


def _case(sha: str | None, kind: str, question: str, outcome: str | None) -> dict[str, Any]:
    verdicts = {} if outcome is None else {"teacher": {"opponent": "teacher", "outcome": outcome}}
    return {
        "case": {"sha256": sha, "kind": kind, "question": question, "prompt": PROMPT},
        "verdicts": verdicts,
    }


def test_losses_are_the_cases_the_student_lost_to_the_teacher_with_a_known_image_and_kind(
    tmp_path: Path,
) -> None:
    cases = [
        _case(TRAIN_A, "detail", "Describe the door.", "loss"),
        _case(TRAIN_A, "reasoning", "Why is it rusty?", "win"),
        _case(TRAIN_B, "conversation", "What colour?", "tie"),
        _case(None, "detail", "No image hash.", "loss"),
        _case(TRAIN_B, "unknown", "No kind.", "loss"),
        _case(TRAIN_B, "reasoning", "Not judged.", None),
        _case(TRAIN_B, "conversation", "How many hinges?", "loss"),
    ]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"cases": cases}), encoding="utf-8")
    assert losses_of(path, held_out=True) == [
        Lost(TRAIN_A, "detail", "Describe the door.", PROMPT, True),
        Lost(TRAIN_B, "conversation", "How many hinges?", PROMPT, True),
    ]
    assert losses_of(tmp_path / "missing.json", held_out=False) == []


def test_training_losses_come_first_and_are_asked_about_their_own_image_quoting_the_missed_question() -> None:
    lost = [
        Lost(HELD, "reasoning", SECRET, PROMPT, True),
        Lost(TRAIN_B, "detail", "Describe the crack.", PROMPT, False),
    ]
    chosen = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=1, seed=0)
    assert len(chosen) == 1
    unit = chosen[0].unit
    assert (unit.sha256, chosen[0].kind, chosen[0].focus) == (TRAIN_B, "detail", PROMPT)
    assert (
        "Describe the crack." in unit.prompt
        and "A student model" in unit.prompt
        and unit.prompt.startswith(PROMPT)
    )


def test_held_out_losses_never_quote_the_held_out_question_and_pick_a_training_image() -> None:
    lost = [Lost(HELD, "reasoning", SECRET, PROMPT, True), Lost(HELD, "detail", SECRET, PROMPT, True)]
    for seed in range(5):
        chosen = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=10, seed=seed)
        assert [t.kind for t in chosen] == ["reasoning", "detail"]
        for target in chosen:
            assert target.unit.sha256 in (TRAIN_A, TRAIN_B)
            assert SECRET not in target.unit.prompt and "rivets" not in target.unit.prompt
            assert f"weak at {target.kind} questions" in target.unit.prompt and target.focus == PROMPT


def test_one_weak_kind_target_per_training_image_and_kind_and_none_once_the_images_run_out() -> None:
    lost = [Lost(HELD, "detail", f"{SECRET} ({i})", PROMPT, True) for i in range(4)]
    chosen = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=10, seed=1)
    assert sorted(t.unit.sha256 for t in chosen) == [TRAIN_A, TRAIN_B]


def test_the_limit_counts_units_and_images_missing_from_the_folder_are_skipped() -> None:
    gone = "g" * 64
    lost = [Lost(gone, "detail", "Describe it.", PROMPT, False)] + [
        Lost(TRAIN_A, "conversation", f"Question {i}?", PROMPT, False) for i in range(5)
    ]
    chosen = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=3, seed=0)
    assert [t.unit.sha256 for t in chosen] == [TRAIN_A] * 3
    assert [t.unit.prompt.count(f"Question {i}?") for i, t in enumerate(chosen)] == [1, 1, 1]


def test_a_unit_an_earlier_round_asked_gives_its_place_to_the_next_lost_item() -> None:
    lost = [Lost(TRAIN_A, "conversation", f"Question {i}?", PROMPT, False) for i in range(3)]
    first = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=2, seed=0)
    asked = {f"{t.unit.sha256}\t{t.unit.prompt}" for t in first}
    again = targeted_units(lost, IMAGES, [TRAIN_A, TRAIN_B], limit=2, seed=0, asked_before=asked)
    assert [t.unit.prompt.count("Question 2?") for t in again] == [1]  # the only one not asked before
    held = [Lost(HELD, "reasoning", SECRET, PROMPT, True)] * 2
    weak = targeted_units(held, IMAGES, [TRAIN_A, TRAIN_B], limit=2, seed=0)
    marks = {f"{t.unit.sha256}\t{t.unit.prompt}" for t in weak}
    assert targeted_units(held, IMAGES, [TRAIN_A, TRAIN_B], limit=2, seed=0, asked_before=marks) == []
