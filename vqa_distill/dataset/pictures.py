"""The dataset's pictures: a copy of each image as the teacher saw it, in the run folder, for the student.

ms-swift's loader opens a row's image with ``Image.open(path).convert("RGB")``: no EXIF turn, alpha
dropped instead of composited, 16-bit grey clipped to white. A row that pointed at the original file
would train a portrait photo sideways beside an answer about the upright picture. So each row points
at ``<out>/images/<sha256>-<budget>.jpg``: the very JPEG the teacher was sent (``teacher/images/prepare.py``),
upright, 8-bit RGB, alpha on white, at the size the teacher's model keeps within the run's ``max_pixels``.

The budget is the teacher's, not the student's: the dataset is built before a student model and its
``max_pixels`` are chosen, and ms-swift scales the copy down to the student's budget when it trains.
The name is the sha256 of the original's bytes and the budget, so a copy is made once, shared by every
row, prompt and dated version that uses it, and a rebuild only checks that it exists. Originals are read,
never written. Copies are prepared in threads: Pillow releases the GIL while it decodes, resizes and
encodes (docs/training.md, "The pictures the student sees", has the measured figures).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vqa_distill.atomic import atomic_write_bytes
from vqa_distill.errors import ImageError
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.discovery import file_sha256
from vqa_distill.teacher.images.prepare import OUTPUT_MIME, prepare_image

IMAGES_DIR = "images"  # <out>/images/: the pictures the rows point at
COPY_SUFFIX = mimetypes.guess_extension(OUTPUT_MIME) or ".jpg"  # the copy holds the bytes the teacher is sent
COPY_THREADS = os.cpu_count() or 1  # copies prepared at once, one per core (the work is GIL-free)


@dataclass(frozen=True, slots=True)
class Source:
    """An original image as the teacher saw it: its path, its bytes' sha256, the size it was sent at."""

    path: str
    sha256: str
    budget: PixelBudget


def teacher_budget(model: str, max_pixels: int) -> PixelBudget:
    """The size the teacher was sent an image at: the run's ``max_pixels``, narrowed to what ``model`` keeps
    (as ``teacher/run/resources.py`` prepares it)."""
    return model_spec(model).budget(max_pixels)


def budget_tag(budget: PixelBudget) -> str:
    """The budget in a copy's name: its pixels, then the model's shape rules when it has any."""
    parts = [str(budget.max_pixels)]
    if budget.max_side is not None:
        parts.append(f"side{budget.max_side}")
    if budget.multiple > 1:
        parts.append(f"grid{budget.multiple}")
    if budget.min_pixels > 1:
        parts.append(f"min{budget.min_pixels}")
    return "-".join(parts)


@dataclass
class Copies:
    """What one build made: the copy of each source, or why it has none; ``made`` counts new copies."""

    paths: dict[Source, str] = field(default_factory=dict)
    problems: dict[Source, str] = field(default_factory=dict)
    made: int = 0


def copy_path(out: str | Path, source: Source) -> Path:
    """Where the copy of ``source`` lives: content-addressed, absolute (ms-swift rows use absolute paths)."""
    return (Path(out) / IMAGES_DIR / f"{source.sha256}-{budget_tag(source.budget)}{COPY_SUFFIX}").resolve()


def make_copy(out: str | Path, source: Source) -> tuple[Path, bool]:
    """Return the copy of ``source`` and whether it was made now; an existing copy is not decoded again.

    Raises ImageError when the original is gone, no longer holds the bytes the teacher saw, or cannot
    be decoded.
    """
    target = copy_path(out, source)
    original = Path(source.path)
    if not original.is_file():
        raise ImageError(f"image file missing: {source.path}")
    if target.is_file():
        return target, False
    try:
        sha256 = file_sha256(original)
    except OSError as exc:
        raise ImageError(f"cannot read image: {exc.strerror or exc}") from exc
    if sha256 != source.sha256:
        raise ImageError(f"image changed since the teacher saw it (no longer sha256 {source.sha256[:12]}…)")
    atomic_write_bytes(target, prepare_image(original, source.budget).jpeg)
    return target, True


def make_copies(out: str | Path, sources: Iterable[Source], threads: int = COPY_THREADS) -> Copies:
    """Make (or find) the copy of every source, ``threads`` at a time; a source that fails gets a problem.

    Sources of one copy (the same bytes at two paths) are prepared once, from the first of them.
    """
    groups: dict[Path, list[Source]] = {}
    for source in dict.fromkeys(sources):
        groups.setdefault(copy_path(out, source), []).append(source)
    copies = Copies()

    def one(source: Source) -> tuple[Path | None, bool, str]:
        try:
            path, made = make_copy(out, source)
        except ImageError as exc:
            return None, False, str(exc)
        return path, made, ""

    firsts = [group[0] for group in groups.values()]
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(firsts))), thread_name_prefix="copy") as pool:
        for group, (path, made, problem) in zip(groups.values(), pool.map(one, firsts), strict=True):
            copies.made += made
            for source in group:
                if path is None:
                    copies.problems[source] = problem
                else:
                    copies.paths[source] = str(path)
    return copies
