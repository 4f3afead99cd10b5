"""The merge check's pure parts: which rows, the worker's spec, and the comparison that names differing rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.student_fixtures import colour_rows, write_jsonl
from vqa_distill.student.evaluate import EvalRow
from vqa_distill.student.infer_worker import InferModel, InferSpec
from vqa_distill.student.merge_check import SHOWN_CHARS, compare, merge_check_spec, pick_rows
from vqa_distill.student.model_resolve import ResolvedModel

ROWS = [
    EvalRow([{"role": "user", "content": "<image>colour?"}], [f"/data/tile_{i}.png"], "red") for i in range(3)
]


def test_identical_answers_pass_with_an_info_line() -> None:
    check = compare(ROWS, ["red", "blue", "green"], ["red", "blue", "green"])
    assert check.ok and check.verdict() == "3/3 identical"
    assert check.message() == "merge check: merged model answers 3 of 3 rows as the adapter does"
    newlines = compare(ROWS, ["red", "\n\n", ""], ["red", "\n\n", ""])
    assert newlines.verdict() == "3/3 identical"
    assert newlines.message().endswith(
        "as the adapter does (2 of the answers degenerate: alike says little there)"
    )


def test_differing_rows_are_named_with_both_answers_cut() -> None:
    long_answer = "The tile is green. " * 20
    check = compare(ROWS, ["red", long_answer, "blue\n"], ["red", long_answer + "!", "blue"])
    assert not check.ok and check.verdict() == "2/3 differ"
    assert [diff.row for diff in check.differing] == [2, 3]
    head, second, third = check.message().splitlines()
    assert head.startswith("merge check: merged model answers 2 of 3 rows differently from the adapter")
    assert second.startswith("  row 2 (tile_1.png): adapter 'The tile is green. ")
    quoted = second.split(" / merged ")[1]
    assert len(quoted) == SHOWN_CHARS + 2 and quoted.endswith("…'")  # cut, in quotes
    assert third == "  row 3 (tile_2.png): adapter 'blue\\n' / merged 'blue'"  # a newline shows


def test_answer_counts_must_match() -> None:
    with pytest.raises(ValueError, match="3 rows but 2 adapter and 3 merged answers"):
        compare(ROWS, ["a", "b"], ["a", "b", "c"])


def test_the_spec_answers_with_base_plus_adapter_then_the_merged_model(tmp_path: Path) -> None:
    base = ResolvedModel("/models/qwen", "qwen2_5_vl", "qwen2_5_vl", True)
    spec = merge_check_spec(
        tmp_path / "rows.jsonl", tmp_path / "out.jsonl", base=base, checkpoint="/run/checkpoint-4",
        merged="/run/checkpoint-4-merged", torch_dtype="bfloat16", max_new_tokens=64, max_pixels=602112,
    )  # fmt: skip
    assert spec.models == [
        InferModel("adapter", "/models/qwen", "qwen2_5_vl", "qwen2_5_vl", ["/run/checkpoint-4"]),
        InferModel("merged", "/run/checkpoint-4-merged", "qwen2_5_vl", "qwen2_5_vl"),
    ]
    assert (spec.max_pixels, spec.torch_dtype, spec.max_new_tokens) == (602112, "bfloat16", 64)
    assert InferSpec.load(spec.dump(tmp_path / "spec.json")) == spec


def test_rows_are_the_first_answerable_ones(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "val.jsonl", colour_rows(tmp_path / "images", 5))
    rows = pick_rows([path], system="sys", limit=3)
    assert [Path(row.images[0]).name for row in rows] == [
        "tile_000_red.png",
        "tile_001_green.png",
        "tile_002_blue.png",
    ]
    assert rows[0].reference == "The tile is red."
    assert pick_rows([path], system="sys", limit=0) == []
