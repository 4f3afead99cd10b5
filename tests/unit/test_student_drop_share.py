"""The drop share: how many rows ms-swift would lose, the line that says so, and the refusal past the limit."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.student_fixtures import colour_rows, write_jsonl
from vqa_distill.cli.student import add_train_arguments, params_from_args
from vqa_distill.errors import DatasetError
from vqa_distill.student.drop_share import DropShare, SwiftDataFlags, refusal_text
from vqa_distill.student.params import TrainParams
from vqa_distill.student.preflight import run_preflight


def test_the_share_line_counts_too_long_and_malformed_rows() -> None:
    share = DropShare(total=120, too_long=5, malformed=2, max_length=2048)
    assert (share.rows, round(share.share, 4)) == (7, 0.0583)
    assert share.describe(see="out/preflight/issues.txt") == (
        "preflight: 7 of 120 rows (5.8 %) would be dropped by ms-swift: 5 longer than max_length 2048 "
        "(truncation_strategy delete), 2 malformed; see out/preflight/issues.txt"
    )
    assert (
        DropShare(10, 0, 0, 400).describe() == "preflight: 0 of 10 rows (0.0 %) would be dropped by ms-swift"
    )
    assert DropShare(0, 0, 0, 400).share == 0.0


@pytest.mark.parametrize(
    ("rows", "total", "limit", "over", "needed"),
    [
        (6, 120, 0.05, False, 0.05),  # exactly at the limit: allowed
        (7, 120, 0.05, True, 0.06),
        (1, 3, 0.3, True, 0.34),
        (3, 3, 0.05, True, 1.0),
        (0, 3, 0.0, False, 0.0),
        (1, 1000, 0.0, True, 0.01),
    ],
)
def test_over_the_limit_and_the_limit_that_would_do(
    rows: int, total: int, limit: float, over: bool, needed: float
) -> None:
    share = DropShare(total, 0, rows, 2048)
    assert share.over(limit) is over
    assert share.needed_limit() == needed


@pytest.mark.parametrize(
    ("swift_args", "expected"),
    [
        ([], SwiftDataFlags("delete", False)),
        (["--deepspeed", "zero2"], SwiftDataFlags("delete", False)),
        (["--truncation_strategy", "right", "--strict", "true"], SwiftDataFlags("right", True)),
        (["--truncation-strategy=left", "--strict=False"], SwiftDataFlags("left", False)),
        (["--strict", "true", "--strict", "false"], SwiftDataFlags("delete", False)),  # the last one wins
        (["--strict", "--lazy_tokenize", "false"], SwiftDataFlags("delete", True)),  # a bare flag is true
    ],
)
def test_swift_flags_are_read_from_swift_args(swift_args: list[str], expected: SwiftDataFlags) -> None:
    assert SwiftDataFlags.from_args(swift_args) == expected


def test_the_line_says_what_other_strategies_do() -> None:
    right = DropShare(100, 3, 1, 1024, SwiftDataFlags("right", False)).describe()
    assert right == (
        "preflight: 4 of 100 rows (4.0 %) would be dropped, cut or fatal in ms-swift: 3 longer than max_length "
        "1024 cut to fit (truncation_strategy right: the end of the answer is lost, the images kept), 1 malformed"
    )
    strict = DropShare(100, 1, 1, 1024, SwiftDataFlags("delete", True)).describe()
    assert "1 longer than max_length 1024 fatal (strict true: the first one stops the run)" in strict
    assert "1 malformed (strict true: fatal)" in strict
    split = DropShare(100, 2, 0, 1024, SwiftDataFlags("split", False)).describe()
    assert "refused (truncation_strategy split: swift sft allows it for pre-training only)" in split
    assert "dropped by ms-swift" in DropShare(100, 0, 2, 1024, SwiftDataFlags("left", False)).describe()


def test_the_refusal_names_count_share_limit_and_what_to_do() -> None:
    share = DropShare(120, 5, 2, 2048)
    assert refusal_text(
        share, 0.05, fit="--max_pixels 602112 (their images then fit in --max_length 2048)"
    ) == (
        "preflight: 7 of 120 rows (5.8 %) would be dropped by ms-swift: 5 longer than max_length 2048 "
        "(truncation_strategy delete), 2 malformed\n"
        "That is more than --max-drop-share 0.05 (5.0 %): too much of the data would go.\n"
        "Fix these rows, or pass --max_pixels 602112 (their images then fit in --max_length 2048), or "
        "--skip-bad-rows with --max-drop-share 0.06 to drop them (they are counted)."
    )
    under = refusal_text(share, 0.1, fit="", counted="Counted with max_pixels 802816 (given).")
    assert under.splitlines()[1:] == [
        "Counted with max_pixels 802816 (given).",
        "Fix these rows, or raise --max_length for them, or pass --skip-bad-rows to drop them (they are counted).",
    ]
    assert refusal_text(DropShare(10, 0, 1, 2048), 0.5, fit="").endswith(
        "Fix these rows, or pass --skip-bad-rows to drop them (they are counted)."
    )


def _dataset(root: Path, good: int, bad: int) -> Path:
    """``good`` rows, then ``bad`` rows with an ``<image>`` tag and no image."""
    rows: list[Any] = colour_rows(root / "images", good)
    rows += [{**rows[0], "images": []} for _ in range(bad)]
    return write_jsonl(root / "train.jsonl", rows)


def _preflight(path: Path, clean_dir: Path, *, skip: bool, limit: float) -> Any:
    return run_preflight(
        [str(path)], [], max_length=2048, count_tokens=None, skip_bad_rows=skip, clean_dir=clean_dir,
        max_drop_share=limit,
    )  # fmt: skip


def test_below_the_limit_skip_bad_rows_drops_and_lists_them(tmp_path: Path) -> None:
    path = _dataset(tmp_path, 24, 1)
    result = _preflight(path, tmp_path / "clean", skip=True, limit=0.05)
    assert result.dropped == 1 and result.share.describe() == (
        "preflight: 1 of 25 rows (4.0 %) would be dropped by ms-swift: 1 malformed"
    )
    assert (
        Path(result.issues_file).read_text(encoding="utf-8")
        == f"{path}:25: 1 <image> tag(s) but 0 image(s)\n"
    )


def test_above_the_limit_skip_bad_rows_is_refused(tmp_path: Path) -> None:
    path = _dataset(tmp_path, 23, 2)
    with pytest.raises(DatasetError) as refused:
        _preflight(path, tmp_path / "clean", skip=True, limit=0.05)
    message = str(refused.value)
    assert message.startswith("2 of 25 row(s) cannot be trained on:\n")
    assert f"{path}:24: 1 <image> tag(s) but 0 image(s)" in message
    assert "preflight: 2 of 25 rows (8.0 %) would be dropped by ms-swift: 2 malformed" in message
    assert "That is more than --max-drop-share 0.05 (5.0 %)" in message
    assert message.endswith(
        "pass --skip-bad-rows with --max-drop-share 0.08 to drop them (they are counted)."
    )
    assert not (tmp_path / "clean").exists()
    assert _preflight(path, tmp_path / "clean", skip=True, limit=0.08).dropped == 2  # the limit it named


def test_without_skip_any_bad_row_is_refused_as_before(tmp_path: Path) -> None:
    path = _dataset(tmp_path, 24, 1)
    with pytest.raises(DatasetError) as refused:
        _preflight(path, tmp_path / "clean", skip=False, limit=0.05)
    message = str(refused.value)
    assert "1 of 25 row(s) cannot be trained on" in message and "(4.0 %)" in message
    assert "--max-drop-share" not in message  # under the limit: only --skip-bad-rows is needed
    assert message.endswith("Fix these rows, or pass --skip-bad-rows to drop them (they are counted).")


def test_max_drop_share_and_merge_check_rows_options() -> None:
    params = TrainParams(dataset=["d.jsonl"], model_id_or_path="m")
    assert (params.max_drop_share, params.merge_check_rows) == (0.05, 3)
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    flags = [
        "--dataset",
        "d.jsonl",
        "--model-id-or-path",
        "m",
        "--max-drop-share",
        "0.2",
        "--merge-check-rows",
        "0",
    ]
    parsed = params_from_args(parser.parse_args(flags))
    assert (parsed.max_drop_share, parsed.merge_check_rows) == (0.2, 0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError):
            TrainParams(dataset=["d.jsonl"], model_id_or_path="m", max_drop_share=bad)
    with pytest.raises(ValidationError):
        TrainParams(dataset=["d.jsonl"], model_id_or_path="m", merge_check_rows=-1)
