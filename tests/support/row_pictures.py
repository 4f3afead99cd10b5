"""Which original file a dataset row's picture was copied from.

A row points at ``<out>/images/<sha256>-<max_pixels>.jpg``, the image as the teacher saw it; the name's
sha256 is that of the original's bytes (vqa_distill/dataset/pictures.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vqa_distill.teacher.images.discovery import file_sha256


def original_of(picture: str | Path, originals: Iterable[Path]) -> Path:
    """Return the file of ``originals`` whose bytes the row's ``picture`` was made from (the first in path
    order when several hold the same bytes); fails when none does."""
    sha = Path(picture).name.split("-")[0]
    matches = sorted(path for path in originals if path.is_file() and file_sha256(path) == sha)
    assert matches, f"{picture} was made from none of the given files"
    return matches[0]
