"""Helpers for teacher-stage tests: make images, run the CLI, read what the server saw."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


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
