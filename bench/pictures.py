"""What the dataset's pictures cost and save: making each copy once, and what training reads each epoch.

Three tables, on cached camera-like 12 MP photos (bench/photos.py; every eighth stored sideways):

1. One copy per photo, at the teacher's default budget and at the student's default budget: CPU ms
   (thread time, least of --repeat tries) and size, for the JPEG the teacher is sent (what
   ``dataset/pictures.py`` writes) beside a lossless PNG of the same pixels (PNG's cost: the same
   decode and resize, its own encode instead of the JPEG one).
2. What ms-swift pays for one image of one row, every epoch: its ``load_image`` then qwen_vl_utils'
   ``fetch_image`` to the student's budget (802,816 px, Qwen2.5-VL at max_length 2048), from the
   original photo (the old rows) and from each kind of copy.
3. Making --photos copies with ``make_copies``: one thread against ``COPY_THREADS`` (wall and CPU time).

Run: .venv/bin/python bench/pictures.py [--photos 16] [--repeat 3] [--threads-only]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import print_table  # noqa: E402
from bench.photos import photo_paths  # noqa: E402
from vqa_distill.dataset.pictures import COPY_THREADS, Source, make_copies  # noqa: E402
from vqa_distill.student.pixels import default_max_pixels  # noqa: E402
from vqa_distill.teacher.images.budget import PixelBudget  # noqa: E402
from vqa_distill.teacher.images.discovery import file_sha256  # noqa: E402
from vqa_distill.teacher.images.prepare import encode_jpeg, prepare_image  # noqa: E402
from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS  # noqa: E402

STUDENT_MAX_PIXELS = default_max_pixels("qwen2_5_vl", 2048) or 802_816
PNG_LEVELS = (6, 1)  # Pillow's default zlib level, and its fastest


def least_cpu_ms(work: Callable[[], object], repeat: int) -> float:
    """The least thread CPU time of ``repeat`` runs of ``work``, in ms."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return 1000 * best


def png_bytes(image: Image.Image, level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def copy_table(photos: list[Path], repeat: int, folder: Path) -> dict[str, list[Path]]:
    """Print table 1; write each kind of copy into ``folder`` and return their paths by kind."""
    rows, written = [], {}
    for budget in (DEFAULT_MAX_PIXELS, STUDENT_MAX_PIXELS):
        cpu: dict[str, list[float]] = {"prepare": [], "jpeg": [], **{f"png{level}": [] for level in PNG_LEVELS}}
        kib: dict[str, list[float]] = {"jpeg": [], **{f"png{level}": [] for level in PNG_LEVELS}}
        jpegs, pngs = written.setdefault(f"JPEG q90 at {budget}", []), written.setdefault(f"PNG at {budget}", [])
        for index, path in enumerate(photos):
            jpeg = prepare_image(path, budget).jpeg
            pixels = Image.open(io.BytesIO(jpeg)).convert("RGB")
            cpu["prepare"].append(least_cpu_ms(lambda path=path, budget=budget: prepare_image(path, budget), repeat))
            cpu["jpeg"].append(least_cpu_ms(lambda pixels=pixels: encode_jpeg(pixels), repeat))
            kib["jpeg"].append(len(jpeg) / 1024)
            jpegs.append(folder / f"{budget}-{index}.jpg")
            jpegs[-1].write_bytes(jpeg)
            for level in PNG_LEVELS:
                cpu[f"png{level}"].append(least_cpu_ms(lambda pixels=pixels, level=level: png_bytes(pixels, level), 1))
                png = png_bytes(pixels, level)
                kib[f"png{level}"].append(len(png) / 1024)
            pngs.append(folder / f"{budget}-{index}.png")
            pngs[-1].write_bytes(png_bytes(pixels, PNG_LEVELS[0]))
        rows.append([budget, "JPEG q90 (the teacher's bytes)", f"{mean(cpu['prepare']):.0f}", f"{mean(kib['jpeg']):.0f}"])
        for level in PNG_LEVELS:  # the same decode and resize, the PNG encode instead of the JPEG one
            png_cpu = mean(cpu["prepare"]) - mean(cpu["jpeg"]) + mean(cpu[f"png{level}"])
            rows.append([budget, f"PNG, zlib level {level}", f"{png_cpu:.0f}", f"{mean(kib[f'png{level}']):.0f}"])
    print_table(
        f"one copy of a 12 MP photo ({len(photos)} photos, least of {repeat} tries each)",
        rows, ["max_pixels", "copy", "CPU ms/photo", "KiB/photo"],
    )  # fmt: skip
    return written


def epoch_table(photos: list[Path], copies: dict[str, list[Path]], repeat: int) -> None:
    """Print table 2: ms-swift's load and resize of one image, per kind of file the row points at."""
    from qwen_vl_utils import fetch_image
    from swift.template.vision_utils import load_image

    def load(path: Path) -> None:
        fetch_image({"image": load_image(str(path)), "max_pixels": STUDENT_MAX_PIXELS})

    rows = []
    for kind, paths in {"original 12 MP JPEG": photos, **copies}.items():
        cpu = [least_cpu_ms(lambda path=path: load(path), repeat) for path in paths]
        rows.append([kind, f"{sum(cpu) / len(cpu):.0f}"])
    print_table(
        f"ms-swift's load_image + fetch_image to {STUDENT_MAX_PIXELS} px, per image per epoch",
        rows, ["the row points at", "CPU ms"],
    )  # fmt: skip


def threads_table(photos: list[Path]) -> None:
    """Print table 3: wall time of making every copy with one thread and with COPY_THREADS."""
    sources = [Source(str(path), file_sha256(path), PixelBudget(DEFAULT_MAX_PIXELS)) for path in photos]
    rows = []
    for threads in sorted({1, COPY_THREADS}):
        with tempfile.TemporaryDirectory() as out:
            started, cpu_started = time.perf_counter(), time.process_time()
            made = make_copies(out, sources, threads=threads).made
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rows.append([threads, made, f"{wall:.2f}", f"{cpu:.2f}", f"{cpu / wall:.2f}", f"{made / wall:.1f}"])
    print_table(
        f"make_copies of {len(photos)} photos (fresh folder; CPU/wall: cores busy at once)",
        rows, ["threads", "copies", "wall s", "CPU s", "CPU/wall", "copies/s"],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16, help="12 MP photos (every 8th is stored sideways)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads-only", action="store_true", help="print table 3 only")
    args = parser.parse_args()
    photos = photo_paths(args.photos)
    if not args.threads_only:
        with tempfile.TemporaryDirectory() as folder:
            copies = copy_table(photos, args.repeat, Path(folder))
            epoch_table(photos, copies, args.repeat)
    threads_table(photos)


if __name__ == "__main__":
    main()
