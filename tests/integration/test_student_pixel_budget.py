"""The pixel budget through ``vqa-distill train``: 12 MP photos train at the default ``--max_length`` with no
``--max_pixels`` given, and an explicitly huge ``--max_pixels`` is refused by the preflight with one that fits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.helpers import run_cli
from tests.support.student_fixtures import photo_rows, write_jsonl
from vqa_distill.errors import EXIT_FATAL, EXIT_OK
from vqa_distill.student import training
from vqa_distill.student.params import TrainParams

# Keeps the run to one real optimizer step on the CPU; none of these touch the pixel budget.
ONE_STEP = {
    "cuda_devices": "cpu", "max_steps": "1", "gradient_accumulation_steps": "1", "split_dataset_ratio": "0",
    "eval_limit": "0", "num_proc": "1", "logging_steps": "1",
}  # fmt: skip
ONE_STEP_FLAGS = [item for name, value in ONE_STEP.items() for item in (f"--{name}", value)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three rows, each about a camera-like 4000×3000 JPEG (~15,000 tokens at ms-swift's own default)."""
    root = tmp_path_factory.mktemp("photos")
    return write_jsonl(root / "train.jsonl", photo_rows(root / "images", 3))


def test_12_mp_photos_train_at_the_default_max_length(tmp_path: Path, tiny_model: Path, photos: Path) -> None:
    out = tmp_path / "checkpoints"
    result = run_cli(
        "train", "--dataset", str(photos), "--model_id_or_path", str(tiny_model), "--output_dir", str(out),
        "--max_length", "2048", *ONE_STEP_FLAGS,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_OK, output[-3000:]
    checkpoint = Path(result.stdout.strip().splitlines()[-1])
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert "max_pixels 802816 (chosen from max_length 2048: an image ≤ ~1024 tokens)" in output
    checked = re.search(r"preflight: 3 row\(s\) checked, longest (\d+) tokens \(limit 2048\)", output)
    assert checked is not None, output[-3000:]
    assert 1024 < int(checked.group(1)) < 1200  # ~1036 image tokens + the text, instead of ~15,400
    assert "cannot be trained on" not in output and "dropped" not in output  # the preflight refused nothing
    args = json.loads((checkpoint.parent / "args.json").read_text(encoding="utf-8"))
    assert (args["max_pixels"], args["max_length"]) == (802816, 2048)  # ms-swift encodes as the preflight did


def test_a_huge_max_pixels_is_refused_naming_one_that_fits(tmp_path: Path, tiny_model: Path, photos: Path) -> None:
    out = tmp_path / "checkpoints"
    result = run_cli(
        "train", "--dataset", str(photos), "--model_id_or_path", str(tiny_model), "--output_dir", str(out),
        "--max_length", "2048", "--max_pixels", "16000000", *ONE_STEP_FLAGS,
    )  # fmt: skip
    assert result.returncode == EXIT_FATAL, result.stderr[-3000:]
    assert "3 of 3 row(s) cannot be trained on" in result.stderr
    assert f"{photos}:1: " in result.stderr and "tokens > --max_length 2048" in result.stderr
    assert "Counted with max_pixels 16000000 (given)." in result.stderr
    suggested = re.search(r"pass --max_pixels (\d+) \(their images then fit in --max_length 2048\)", result.stderr)
    assert suggested is not None, result.stderr[-3000:]
    assert "or --skip-bad-rows" in result.stderr
    assert not out.exists()  # refused before anything was trained

    value = int(suggested.group(1))
    assert value % (28 * 28) == 0 and 802_816 <= value < 16_000_000  # most of the row's room, not more
    params = TrainParams(
        dataset=[str(photos)], model_id_or_path=str(tiny_model), output_dir=str(tmp_path / "again"),
        cuda_devices="cpu", max_length=2048, max_pixels=value,
    )  # fmt: skip
    prepared = training.prepare(params, log=lambda _: None)  # the suggested value passes the preflight
    assert prepared.dropped_rows == 0 and 1900 < prepared.max_tokens <= 2048
