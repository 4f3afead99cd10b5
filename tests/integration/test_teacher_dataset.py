"""The dataset builder: ms-swift rows from the ledger, validated, de-duplicated, split by image."""

from __future__ import annotations

from pathlib import Path

from tests.support.helpers import make_images, run_cli
from vqa_distill.dataset.build import build_dataset, read_jsonl
from vqa_distill.dataset.rows import row_problems
from vqa_distill.teacher.endpoint.request import request_key
from vqa_distill.teacher.images.discovery import file_sha256
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, STATUS_FAILED, Ledger, TeacherRecord


def answered(image: Path, prompt: str, answer: str, *, system: str | None = None, model: str = "m") -> TeacherRecord:
    sha = file_sha256(image)  # the dataset copies the image only while it holds the bytes the teacher saw
    return TeacherRecord(
        key=request_key(sha256=sha, prompt=prompt, system=system, model=model, params={}), status=STATUS_ANSWERED,
        image_path=str(image), rel_path=image.name, sha256=sha, prompt=prompt, system=system, model=model,
        params={}, answer=answer, finish_reason="stop",
    )


def test_rows_are_valid_ms_swift_rows_with_system_and_absolute_paths(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", 3)
    with Ledger(tmp_path / "out") as ledger:
        for image in images:
            ledger.record(answered(image, "What is wrong?", f"A scratch on {image.name}.", system="Be brief."))
        report = build_dataset(ledger, tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert report.train_rows == 3 == len(rows)
    for row in rows:
        assert row_problems(row) == []
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][1]["content"].count("<image>") == len(row["images"]) == 1
        assert Path(row["images"][0]).is_absolute()


def test_newest_answer_wins_and_failures_and_missing_images_stay_out(tmp_path: Path) -> None:
    image_a, image_b, image_c = make_images(tmp_path / "images", 3)
    with Ledger(tmp_path / "out") as ledger:
        ledger.record(answered(image_a, "Q?", "old answer", model="model-1"))
        ledger.record(answered(image_a, "Q?", "new answer", model="model-2"))  # same image+prompt, newer model
        failed = answered(image_b, "Q?", "")
        failed.status, failed.answer, failed.error_message = STATUS_FAILED, None, "HTTP 400"
        ledger.record(failed)
        ledger.record(answered(image_c, "Q?", "fine"))
        image_c.unlink()  # answered, then deleted: the row must not reach training
        report = build_dataset(ledger, tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert [row["messages"][-1]["content"] for row in rows] == ["new answer"]
    assert (report.dropped_duplicates, report.dropped_invalid) == (1, 1)
    assert "image file missing" in report.invalid_reasons[0]


def test_split_is_by_image_and_reproducible(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", 10)
    with Ledger(tmp_path / "out") as ledger:
        for image in images:
            for prompt in ("Q1?", "Q2?"):
                ledger.record(answered(image, prompt, f"{prompt} {image.name}"))
        first = build_dataset(ledger, tmp_path / "out", val_ratio=0.2, seed=7)
        val_first = read_jsonl(tmp_path / "out" / "val.jsonl")
        train_first = read_jsonl(tmp_path / "out" / "train.jsonl")
        build_dataset(ledger, tmp_path / "out", val_ratio=0.2, seed=7)
        assert read_jsonl(tmp_path / "out" / "val.jsonl") == val_first
        build_dataset(ledger, tmp_path / "out", val_ratio=0.2, seed=8)
        val_other_seed = read_jsonl(tmp_path / "out" / "val.jsonl")
    assert (first.train_rows, first.val_rows) == (16, 4)
    train_images = {row["images"][0] for row in train_first}
    val_images = {row["images"][0] for row in val_first}
    assert len(val_images) == 2 and not train_images & val_images
    assert val_other_seed != val_first


def test_dataset_command_rebuilds_without_any_call(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", 2)
    with Ledger(tmp_path / "out") as ledger:
        for image in images:
            ledger.record(answered(image, "Q?", "A."))
    result = run_cli("dataset", "--out", str(tmp_path / "out"), "--val-ratio", "0.5")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 1
    assert len(read_jsonl(tmp_path / "out" / "val.jsonl")) == 1
    assert len(read_jsonl(tmp_path / "out" / "responses.jsonl")) == 2
    missing = run_cli("dataset", "--out", str(tmp_path / "nowhere"))
    assert missing.returncode == 3 and "no ledger.sqlite" in missing.stderr
