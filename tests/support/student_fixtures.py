"""Fixtures of the student-stage tests: the tiny model built once, small real datasets, a Prefect API.

Import what a module uses explicitly (``from tests.support.student_fixtures import tiny_model, ...``). Nothing
is mocked: the model is a real (random) Qwen2.5-VL, the images real PNG files, training real ms-swift.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vqa_distill.dataset.rows import make_row

# Offline: no hub, no telemetry. Set at import so that child processes (swift, the CLI) inherit it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The original train.py's flags and their defaults (its README), which users know and ours must keep.
ORIGINAL_DEFAULTS: dict[str, Any] = {
    "cuda_devices": "0",
    "system": "You are a helpful assistant.",
    "output_dir": "checkpoint",
    "data_seed": 42,
    "max_length": 2048,
    "split_dataset_ratio": 0.01,
    "num_proc": 4,
    "model_name": ["小黄", "Xiao Huang"],
    "model_author": ["魔搭", "ModelScope"],
    "lora_rank": 8,
    "lora_alpha": 32,
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 16,
    "num_train_epochs": 5,
}
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
PROMPT = "What colour is this tile?"
SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2.5-VL with Qwen's tokenizer ids, built once per session."""
    from vqa_distill.student.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A Prefect API for flow runs: the session server of conftest.py when set, else a test harness."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def colour_rows(folder: Path, count: int, *, size: tuple[int, int] = (56, 56)) -> list[dict[str, Any]]:
    """``count`` rows, each a solid-colour PNG (written into ``folder``) asked about and answered."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    names = list(COLOURS)
    for index in range(count):
        name = names[index % len(names)]
        path = folder / f"tile_{index:03d}_{name}.png"
        Image.new("RGB", size, COLOURS[name]).save(path)
        rows.append(make_row(image_path=str(path), prompt=PROMPT, answer=f"The tile is {name}.", system=SYSTEM))
    return rows


def camera_photo(path: Path, *, size: tuple[int, int] = (4000, 3000), seed: int = 0) -> Path:
    """Write a photo-like JPEG: smooth colour gradients, a few soft shapes and sensor-like noise, which
    compress and resize like a camera's picture (a flat colour would not)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width, height = size
    small_w, small_h = max(1, width // 8), max(1, height // 8)  # the smooth scene, drawn small and upscaled
    y, x = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    scene = np.stack(
        [110 + 70 * np.sin(x / small_w * (2 + i) + phase[i]) * np.cos(y / small_h * (3 - i) + phase[i]) for i in range(3)],
        axis=-1,
    )
    for _ in range(6):  # soft blobs: objects in the scene
        cx, cy, radius = rng.uniform(0, small_w), rng.uniform(0, small_h), rng.uniform(small_h / 12, small_h / 4)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
        scene += blob[..., None] * rng.uniform(-80, 80, 3).astype(np.float32)
    smooth = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    noise = rng.integers(-14, 15, (height, width, 3), dtype=np.int16)  # sensor noise, full resolution
    pixels = np.clip(np.asarray(smooth, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


def photo_rows(folder: Path, count: int, *, size: tuple[int, int] = (4000, 3000)) -> list[dict[str, Any]]:
    """``count`` rows about camera-sized photos (``camera_photo``, 12 MP by default), one photo a row."""
    rows = []
    for index in range(count):
        path = camera_photo(folder / f"photo_{index:03d}.jpg", size=size, seed=index)
        rows.append(
            make_row(image_path=str(path), prompt="Describe this photo.", answer=f"Photo {index}.", system=SYSTEM)
        )
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows (objects, or raw strings taken as lines) to a JSONL file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def colour_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid dataset: train.jsonl (8 rows) and val.jsonl (2 rows) with their images."""
    root = tmp_path_factory.mktemp("colour-dataset")
    rows = colour_rows(root / "images", 10)
    return {"train": write_jsonl(root / "train.jsonl", rows[:8]), "val": write_jsonl(root / "val.jsonl", rows[8:])}
