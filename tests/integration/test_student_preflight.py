"""The preflight: every row checked and encoded with the tiny model's real template before training."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.student_fixtures import PROMPT, SYSTEM, colour_rows, write_jsonl
from vqa_distill.errors import DatasetError
from vqa_distill.student import training
from vqa_distill.student.model_resolve import resolve_model
from vqa_distill.student.params import TrainParams
from vqa_distill.student.pixels import choose_pixel_budget
from vqa_distill.student.preflight import check_files, run_preflight
from vqa_distill.student.token_count import TokenCounter, load_token_counter

MAX_LENGTH = 400  # a small image row is ~100 tokens; the large image below is ~1,800


@pytest.fixture(scope="module")
def counter(tiny_model: Path) -> TokenCounter:
    return load_token_counter(resolve_model(str(tiny_model)), system=SYSTEM, max_pixels=None)


def bad_dataset(root: Path) -> tuple[Path, dict[int, str]]:
    """A file with two good rows among one bad row of every kind; returns it and line -> expected reason."""
    good = colour_rows(root / "images", 3)
    broken = root / "images" / "broken.png"
    broken.write_bytes(b"this is not a PNG file")
    large = root / "images" / "large.png"
    Image.new("RGB", (1200, 1200), (10, 120, 200)).save(large)
    user, answer = good[0]["messages"][1], good[0]["messages"][2]
    lines: list[object] = [
        good[0],  # 1
        {**good[1], "images": []},  # 2: tag without image
        {**good[1], "images": [str(root / "images" / "gone.png")]},  # 3
        {**good[1], "images": [str(broken)]},  # 4
        {"query": PROMPT, "response": "red", "images": [good[0]["images"][0]]},  # 5: a second format
        '{"messages": [',  # 6
        good[2],  # 7
        {**good[2], "images": [str(large)]},  # 8: longer than MAX_LENGTH
        {"messages": [user, user, answer], "images": good[0]["images"] * 2},  # 9
        {"messages": [user, {"role": "assistant", "content": "  "}], "images": good[0]["images"]},  # 10
    ]
    expected = {
        2: "1 <image> tag(s) but 0 image(s)",
        3: "image 0 not found",
        4: "image 0 cannot be decoded",
        5: "row is in 'query-response' format, not 'messages' (ms-swift would silently drop it)",
        6: "invalid JSON",
        8: f"> --max_length {MAX_LENGTH} (ms-swift would silently delete it)",
        9: "roles must alternate user/assistant",
        10: "(assistant) is empty",
    }
    return write_jsonl(root / "train.jsonl", lines), expected


def test_every_bad_row_is_named_by_line_and_reason(tmp_path: Path, counter: TokenCounter) -> None:
    path, expected = bad_dataset(tmp_path)
    report = check_files([str(path)], max_length=MAX_LENGTH, count_tokens=counter)
    found = {issue.line: issue.reason for issue in report.issues}
    assert sorted(found) == sorted(expected)
    for line, reason in expected.items():
        assert reason in found[line], (line, found[line])
    assert report.files[0].good_lines == [1, 7]
    assert (report.total_rows, report.bad_rows) == (10, 8)
    assert report.files[0].max_tokens > 50  # counted with the real template, image tokens included


def test_bad_rows_refuse_training_naming_file_and_line(tmp_path: Path, counter: TokenCounter) -> None:
    path, _ = bad_dataset(tmp_path)
    with pytest.raises(DatasetError) as refused:
        run_preflight(
            [str(path)],
            [],
            max_length=MAX_LENGTH,
            count_tokens=counter,
            skip_bad_rows=False,
            clean_dir=tmp_path / "c",
        )
    message = str(refused.value)
    assert "8 of 10 row(s) cannot be trained on" in message
    assert f"{path}:3: image 0 not found" in message
    assert f"{path}:5: row is in 'query-response' format" in message
    assert "--skip-bad-rows" in message
    assert not (tmp_path / "c").exists()


def test_skip_bad_rows_trains_on_a_counted_clean_copy(tmp_path: Path, counter: TokenCounter) -> None:
    path, _ = bad_dataset(tmp_path)
    val = write_jsonl(tmp_path / "val.jsonl", colour_rows(tmp_path / "val-images", 2))
    result = run_preflight(
        [str(path)], [str(val)], max_length=MAX_LENGTH, count_tokens=counter, skip_bad_rows=True,
        clean_dir=tmp_path / "clean", max_drop_share=1.0,
    )  # fmt: skip
    assert result.dropped == 8
    assert result.val_dataset == [str(val)]  # a clean file is used as it is
    (cleaned,) = result.dataset
    assert Path(cleaned).parent == tmp_path / "clean"
    original = path.read_text(encoding="utf-8").splitlines()
    kept = [json.loads(line) for line in Path(cleaned).read_text(encoding="utf-8").splitlines()]
    assert kept == [json.loads(original[0]), json.loads(original[6])]


def test_a_mixed_format_file_is_refused(tmp_path: Path, counter: TokenCounter) -> None:
    rows: list[Any] = colour_rows(tmp_path / "images", 3)
    rows.insert(1, {"conversations": [{"from": "human", "value": "<image>hi"}], "images": rows[0]["images"]})
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    report = check_files([str(path)], max_length=MAX_LENGTH, count_tokens=counter)
    assert [(i.line, i.reason) for i in report.issues] == [
        (2, "row is in 'sharegpt' format, not 'messages' (ms-swift would silently drop it)")
    ]


def test_missing_and_empty_files_are_refused_even_with_skip(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError) as refused:
        run_preflight(
            [str(tmp_path / "nope.jsonl"), str(empty)], [], max_length=MAX_LENGTH, count_tokens=None,
            skip_bad_rows=True, clean_dir=tmp_path / "c",
        )  # fmt: skip
    assert "nope.jsonl:0: cannot read file" in str(refused.value)
    assert "empty.jsonl:0: file has no rows" in str(refused.value)


def test_prepare_checks_before_training(tmp_path: Path, tiny_model: Path) -> None:
    path, _ = bad_dataset(tmp_path)
    params = TrainParams(
        dataset=[str(path)], model_id_or_path=str(tiny_model), cuda_devices="cpu", max_length=MAX_LENGTH,
        output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    with pytest.raises(DatasetError, match=r"train\.jsonl:4: image 0 cannot be decoded"):
        training.prepare(params)
    logged: list[str] = []
    prepared = training.prepare(
        params.model_copy(update={"skip_bad_rows": True, "max_drop_share": 0.7}), log=logged.append
    )
    # No --max_pixels: the budget is chosen from --max_length (200 tokens an image), so the 1200×1200
    # image of line 8 is scaled down to fit and only the 7 rows with other faults are dropped.
    assert (prepared.total_rows, prepared.dropped_rows) == (10, 7)
    assert "max_pixels 156800 (chosen from max_length 400: an image ≤ ~200 tokens)" in logged
    assert prepared.params.max_pixels == 156_800 and prepared.pixels.source == "derived"
    assert prepared.model.model_type == "qwen2_5_vl" and not prepared.device.is_cuda
    assert Path(prepared.dataset[0]).is_relative_to(tmp_path / "out" / "preflight")


def test_a_too_long_row_is_refused_naming_a_max_pixels_that_fits(tmp_path: Path, tiny_model: Path) -> None:
    large = tmp_path / "large.png"
    Image.new("RGB", (1200, 900), (10, 120, 200)).save(large)
    (row,) = colour_rows(tmp_path / "images", 1)
    path = write_jsonl(tmp_path / "train.jsonl", [row, {**row, "images": [str(large)]}])
    model = resolve_model(str(tiny_model))
    given = choose_pixel_budget(2_000_000, model.model_type, MAX_LENGTH)  # above 1200×900: not scaled at all
    counter = load_token_counter(model, system=SYSTEM, max_pixels=given.max_pixels)
    with pytest.raises(DatasetError) as refused:
        run_preflight(
            [str(path)], [], max_length=MAX_LENGTH, count_tokens=counter, skip_bad_rows=False,
            clean_dir=tmp_path / "c", pixels=given,
        )  # fmt: skip
    message = str(refused.value)
    assert "1 of 2 row(s) cannot be trained on" in message and f"{path}:2: " in message
    assert "Counted with max_pixels 2000000 (given)." in message
    suggested = re.search(
        r"pass --max_pixels (\d+) \(their images then fit in --max_length 400\), or --skip-bad-rows", message
    )
    assert suggested is not None, message
    value = int(suggested.group(1))
    assert value % 784 == 0
    # Counted again under the suggested budget, the row fits, using most of the room it has.
    report = check_files(
        [str(path)], max_length=MAX_LENGTH,
        count_tokens=load_token_counter(model, system=SYSTEM, max_pixels=value),
    )  # fmt: skip
    assert report.ok and MAX_LENGTH - 60 < report.files[0].max_tokens <= MAX_LENGTH


def test_rows_whose_text_alone_is_too_long_get_no_max_pixels_hint(
    tmp_path: Path, counter: TokenCounter
) -> None:
    (row,) = colour_rows(tmp_path / "images", 1)
    wordy = {**row, "messages": [row["messages"][0], {"role": "user", "content": "<image>" + "word " * 500},
                                  row["messages"][2]]}  # fmt: skip
    path = write_jsonl(tmp_path / "train.jsonl", [wordy])
    budget = choose_pixel_budget(None, "qwen2_5_vl", MAX_LENGTH)
    with pytest.raises(DatasetError) as refused:
        run_preflight(
            [str(path)], [], max_length=MAX_LENGTH, count_tokens=counter, skip_bad_rows=False,
            clean_dir=tmp_path / "c", pixels=budget,
        )  # fmt: skip
    message = str(refused.value)
    assert "tokens > --max_length 400" in message
    assert "--max_pixels" not in message.splitlines()[-1]
    assert message.endswith(
        "Fix these rows, or raise --max_length for them, or pass --skip-bad-rows with --max-drop-share 1 "
        "to drop them (they are counted)."
    )


def test_prepare_refuses_when_more_than_max_drop_share_would_go(tmp_path: Path, tiny_model: Path) -> None:
    rows: list[Any] = colour_rows(tmp_path / "images", 20)
    large = tmp_path / "images" / "large.png"
    Image.new("RGB", (1200, 1200), (10, 120, 200)).save(large)
    rows.insert(5, {**rows[0], "images": [str(large)]})  # line 6: too long at max_pixels 2000000
    rows.append({**rows[1], "images": []})  # line 22: a tag without its image
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    params = TrainParams(
        dataset=[str(path)], model_id_or_path=str(tiny_model), cuda_devices="cpu", max_length=MAX_LENGTH,
        max_pixels=2_000_000, output_dir=str(tmp_path / "out"), skip_bad_rows=True,
    )  # fmt: skip
    share_line = (
        f"preflight: 2 of 22 rows (9.1 %) would be dropped by ms-swift: 1 longer than max_length {MAX_LENGTH} "
        "(truncation_strategy delete), 1 malformed"
    )
    with pytest.raises(DatasetError) as refused:
        training.prepare(params, log=lambda _: None)
    message = str(refused.value)
    assert share_line in message.splitlines()
    assert "That is more than --max-drop-share 0.05 (5.0 %): too much of the data would go." in message
    assert f"{path}:6: " in message and f"{path}:22: 1 <image> tag(s) but 0 image(s)" in message
    assert re.search(
        r"pass --max_pixels \d+ .*, or --skip-bad-rows with --max-drop-share 0\.1 to drop them", message
    )
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained

    logged: list[str] = []
    prepared = training.prepare(params.model_copy(update={"max_drop_share": 0.1}), log=logged.append)
    assert (prepared.total_rows, prepared.dropped_rows, prepared.drop_share.rows) == (22, 2, 2)
    (line,) = [entry for entry in logged if entry.startswith("preflight: 2 of 22")]
    assert line.startswith(share_line + "; see ") and line.endswith("issues.txt")
    assert Path(line.split("; see ")[1]).read_text(encoding="utf-8").count("\n") == 2
