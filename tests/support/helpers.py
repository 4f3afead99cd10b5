"""Helpers shared by the tests: make images and folders, build parameters, run the CLI, read what the server saw."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from vqa_distill.teacher.params import TeacherParams

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_API_KEY = "sk-test-4f9c2b7e1d3a5c6b8e0f1a2b3c4d5e6f"  # a fake key: tests assert it never leaks


def make_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str | None = None) -> Path:
    """Write a solid-colour image with marks unique to its folder.

    Every test gets pictures no other test has: the task cache is keyed by content across runs and
    folders (that is the point of it), so shared pictures would be answered from another test's cache.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    salt = hashlib.sha256(str(path.resolve()).encode()).digest()
    for index in range(4):
        image.putpixel((index, 0), (salt[3 * index], salt[3 * index + 1], salt[3 * index + 2]))
    image.save(path, format=fmt)
    return path


def make_images(folder: Path, count: int, prefix: str = "img", size: tuple[int, int] = (64, 48)) -> list[Path]:
    """Write ``count`` distinct PNG images into ``folder``."""
    return [
        make_image(folder / f"{prefix}_{i:03d}.png", ((37 * i) % 256, (91 * i + 50) % 256, (13 * i + 100) % 256), size)
        for i in range(count)
    ]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``vqa-distill`` in a subprocess (as a user would) and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vqa_distill.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def chat_requests(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the chat-completion requests the server saw that carried an image (not the preflight)."""
    return [r for r in stats["requests"] if r.get("fingerprints")]


def generate_args(images: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    """Build a ``generate`` command line with fast retries and no progress bar."""
    return [
        "generate", "--images", str(images), "--out", str(out), "--base-url", base_url,
        "--prompt", "Describe the defects.", "--retry-delay", "0.05", "--no-progress", *extra,
    ]


def params_for(images: Path, out: Path, base_url: str, **overrides: Any) -> TeacherParams:
    """Teacher parameters against the offline teacher: one prompt, fast retries, limits out of the way."""
    values: dict[str, Any] = {
        "images": str(images), "out": str(out), "base_url": base_url, "prompts": ["Describe the defects."],
        "retry_delay": 0.05, "rpm": 6000, "tpm": 10_000_000,
    }
    values.update(overrides)
    return TeacherParams(**values)


TINY_TRAINING = {
    "cuda_devices": "cpu", "max_steps": 2, "gradient_accumulation_steps": 1, "split_dataset_ratio": 0.0,
    "eval_limit": 0, "num_proc": 1, "logging_steps": 1,
}  # fmt: skip


def teacher_params(images: Path, out: Path, base_url: str) -> dict[str, Any]:
    """Teacher parameters of a deployment run: the offline teacher, fast retries, generous limits."""
    return {
        "images": str(images), "out": str(out), "base_url": base_url, "prompts": ["Describe the defects."],
        "retry_delay": 0.05, "rpm": 6000, "tpm": 10_000_000,
    }  # fmt: skip


def build_mixed_folder(root: Path) -> dict[str, Path]:
    """A folder with everything a user's folder may hold; returns the interesting paths by role."""
    paths = {
        "valid": make_image(root / "valid.png", (200, 10, 10)),
        "jpeg_named_png": make_image(root / "really_a_jpeg.png", (10, 200, 10), fmt="JPEG"),
        "no_suffix": make_image(root / "photo_without_suffix", (10, 10, 200), fmt="PNG"),
        "unicode": make_image(root / "nested" / "deeper" / "ünïcode name 1.jpg", (120, 120, 0)),
        "duplicate": root / "nested" / "copy of valid.png",
    }
    paths["duplicate"].write_bytes(paths["valid"].read_bytes())
    truncated = root / "truncated.jpg"
    full = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 90, 90)).save(full, format="JPEG")
    truncated.write_bytes(full.getvalue()[:400])
    paths["truncated"] = truncated
    (root / "not_an_image.jpg").write_text("this is text pretending to be a photo")
    paths["not_an_image"] = root / "not_an_image.jpg"
    (root / "empty.png").write_bytes(b"")
    paths["empty"] = root / "empty.png"
    (root / "notes.txt").write_text("not an image and not named like one")
    make_image(root / ".hidden.png", (1, 2, 3))
    make_image(root / ".cache" / "thumb.png", (4, 5, 6))
    os.symlink(root, root / "nested" / "loop")  # a symlink loop back to the root
    return paths
