"""CPU and fidelity of preparing a 12 MP photo: the project's ``prepare_image`` beside its alternatives.

Each way decodes a cached camera-like photo (bench/photos.py) at the draft scale the budget allows,
resizes it to the budget and encodes JPEG, then is compared with a reference that decodes every pixel
and resizes with LANCZOS: PSNR after the JPEG round trip, in dB (higher is closer; upright photos only, as
the bare loop ignores EXIF orientation). CPU is thread time, counted over every photo,
the least of --repeat tries per photo, so other load on the machine counts as little as it can.

Run: .venv/bin/python bench/prepare.py [--photos 12] [--max-pixels 2359296] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import print_table  # noqa: E402
from bench.photo_race import bare_prepare  # noqa: E402
from bench.photos import photo_paths  # noqa: E402
from vqa_distill.teacher.images.prepare import fit_within, prepare_image  # noqa: E402

Prepare = Callable[[Path, int], str]


def upright_target(image: Image.Image, max_pixels: int) -> tuple[int, int]:
    """The budget's size for the image as it is meant to be seen."""
    swapped = image.getexif().get(0x0112, 1) in {5, 6, 7, 8}
    width, height = image.size
    return fit_within(*((height, width) if swapped else (width, height)), max_pixels)


def full_turn_first(resample: Image.Resampling, quality: int) -> Prepare:
    """The previous way: draft, load, turn the whole draft (a copy when upright), then resize."""

    def prepare(path: Path, max_pixels: int) -> str:
        with Image.open(path) as source:
            width, height = upright_target(source, max_pixels)
            swapped = source.getexif().get(0x0112, 1) in {5, 6, 7, 8}
            source.draft("RGB", (height, width) if swapped else (width, height))
            image = ImageOps.exif_transpose(source).convert("RGB")
            image = image.resize((width, height), resample, reducing_gap=3.0)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    return prepare


def small_turn_last(resample: Image.Resampling, quality: int) -> Prepare:
    """The project's order with another filter or quality: draft, resize, turn the small image."""

    def prepare(path: Path, max_pixels: int) -> str:
        with Image.open(path) as source:
            width, height = upright_target(source, max_pixels)
            orientation = source.getexif().get(0x0112, 1)
            stored = (height, width) if orientation in {5, 6, 7, 8} else (width, height)
            source.draft("RGB", stored)
            image = source.convert("RGB").resize(stored, resample)
            if orientation != 1:
                image = _turn(image, orientation)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    return prepare


def _turn(image: Image.Image, orientation: int) -> Image.Image:
    from vqa_distill.teacher.images.prepare import UPRIGHT

    return image.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else image


def reference(path: Path, max_pixels: int) -> np.ndarray:
    """Every pixel decoded and turned, then LANCZOS to the budget: the most faithful result."""
    with Image.open(path) as source:
        image = ImageOps.exif_transpose(source).convert("RGB")
        image = image.resize(fit_within(*image.size, max_pixels), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def decode_url(url: str) -> np.ndarray:
    payload = url.split(",", 1)[1]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"), dtype=np.float32)


def measure(prepare: Prepare, photos: list[Path], max_pixels: int, repeat: int, refs: dict[Path, np.ndarray]) -> list[float]:
    """Return [CPU ms per photo, PSNR dB, KiB per photo] for one way of preparing."""
    cpu, psnr, size = [], [], []
    for path in photos:
        best = float("inf")
        for _ in range(repeat):
            started = time.thread_time()
            url = prepare(path, max_pixels)
            best = min(best, time.thread_time() - started)
        cpu.append(1000 * best)
        size.append(len(url) * 3 / 4 / 1024)
        if path in refs:  # upright photos only: the bare loop leaves sideways ones sideways
            psnr.append(10 * np.log10(255**2 / np.mean((decode_url(url) - refs[path]) ** 2)))
    return [float(np.mean(cpu)), float(np.mean(psnr)), float(np.mean(size))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16, help="photos to prepare (every 8th is stored sideways)")
    parser.add_argument("--max-pixels", type=int, default=1536 * 1536)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    photos = photo_paths(args.photos)
    refs = {path: reference(path, args.max_pixels) for path in photos if Image.open(path).getexif().get(0x0112, 1) == 1}
    r = Image.Resampling
    ways: dict[str, Prepare] = {
        "prepare_image (HAMMING q90, turn last)": lambda p, m: prepare_image(p, m).data_url,
        "previous (LANCZOS q90, exif_transpose first)": full_turn_first(r.LANCZOS, 90),
        "bare loop (thumbnail: BICUBIC q85, no EXIF)": bare_prepare,
        "BILINEAR q90": small_turn_last(r.BILINEAR, 90),
        "BICUBIC q90": small_turn_last(r.BICUBIC, 90),
        "LANCZOS q90": small_turn_last(r.LANCZOS, 90),
        "HAMMING q85": small_turn_last(r.HAMMING, 85),
        "BOX q90": small_turn_last(r.BOX, 90),
    }
    rows = [[name, *(f"{v:.1f}" if i != 1 else f"{v:.2f}" for i, v in enumerate(measure(way, photos, args.max_pixels, args.repeat, refs)))]
            for name, way in ways.items()]  # fmt: skip
    print_table(
        f"preparing {len(photos)} 12 MP photos to {args.max_pixels} px (least of {args.repeat} tries each)",
        rows, ["way", "CPU ms/photo", "PSNR vs full-decode LANCZOS dB", "KiB sent"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
