"""The loop's dataset versions: the last one plus this round's new rows, never a held-out image, counted by reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqa_distill.dataset.rows import make_row
from vqa_distill.errors import FatalRunError
from vqa_distill.loop.versions import VersionRow, grow, read_version, write_version

HELD, TRAIN_A, TRAIN_B = "h" * 64, "a" * 64, "b" * 64
PROMPT = "Describe the defects."
TARGETED = f"{PROMPT}\nA student model answered this detail question about the image wrongly: ..."


def _row(sha: str, question: str, *, prompt: str = PROMPT, answer: str = "An answer.") -> VersionRow:
    row = make_row(image_path=f"/run/images/{sha}-1.jpg", prompt=question, answer=answer)
    return VersionRow(row, {"kind": "detail", "prompt": prompt, "sha256": sha})


def test_the_next_version_is_the_last_plus_new_rows_each_image_and_question_once() -> None:
    previous, _ = grow(
        [], {"seed": [_row(TRAIN_A, "Describe it.")]}, round_number=0, held_out={HELD}, focus_of={}
    )
    added = {
        "targeted": [
            _row(TRAIN_A, "Describe it.", answer="Another wording."),
            _row(TRAIN_A, "Where is the crack?"),
        ],
        "doubt": [_row(TRAIN_B, "Describe it."), _row(TRAIN_B, "Describe it.")],
    }
    rows, counts = grow(previous, added, round_number=1, held_out={HELD}, focus_of={})
    assert [(r.meta["sha256"], r.row["messages"][0]["content"]) for r in rows] == [
        (TRAIN_A, "<image>Describe it."), (TRAIN_A, "<image>Where is the crack?"), (TRAIN_B, "<image>Describe it."),
    ]  # fmt: skip
    assert rows[0].row["messages"][1]["content"] == "An answer."  # the row already trained on stays
    assert counts == {"targeted": 1, "doubt": 1}
    assert [(r.meta["reason"], r.meta["round"]) for r in rows] == [("seed", 0), ("targeted", 1), ("doubt", 1)]


def test_a_targeted_rows_prompt_is_restored_to_the_users_prompt() -> None:
    rows, _ = grow([], {"targeted": [_row(TRAIN_A, "Describe the hinge.", prompt=TARGETED)]}, round_number=2,
                   held_out=set(), focus_of={TARGETED: PROMPT})  # fmt: skip
    assert rows[0].meta == {
        "kind": "detail",
        "prompt": PROMPT,
        "sha256": TRAIN_A,
        "reason": "targeted",
        "round": 2,
    }


def test_a_held_out_row_is_refused_whatever_asked_for_it() -> None:
    for reason in ("seed", "targeted", "doubt", "random"):
        with pytest.raises(FatalRunError, match="held-out image"):
            grow([], {reason: [_row(TRAIN_A, "Fine."), _row(HELD, "Describe it.")]}, round_number=1,
                 held_out={HELD}, focus_of={})  # fmt: skip


def test_a_row_that_does_not_say_its_image_is_refused_it_cannot_be_checked_against_the_held_out_set() -> None:
    bare = VersionRow(
        make_row(image_path="/run/images/x.jpg", prompt="Describe it.", answer="An answer."), {}
    )
    with pytest.raises(FatalRunError, match="sha256"):
        grow([], {"doubt": [bare]}, round_number=1, held_out={HELD}, focus_of={})


def test_a_version_reads_back_as_written_and_a_metadata_file_out_of_step_is_not_trusted(
    tmp_path: Path,
) -> None:
    rows, _ = grow([], {"seed": [_row(TRAIN_A, "Q1?"), _row(TRAIN_B, "Q2?")]}, round_number=0, held_out=set(),
                   focus_of={})  # fmt: skip
    path = write_version(tmp_path / "r0" / "train.jsonl", rows)
    assert read_version(path) == rows
    (tmp_path / "r0" / "train.meta.jsonl").write_text('{"sha256": "x"}\n', encoding="utf-8")
    assert [r.meta for r in read_version(path)] == [{}, {}]
    assert read_version(tmp_path / "missing.jsonl") == []
