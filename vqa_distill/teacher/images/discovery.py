"""Find the images of a folder: recursive, loop-safe, hidden files skipped, formats told by content.

A file is a candidate when Pillow recognises its header as a supported format, or when its name says
it is an image (then a decode failure is the user's to see, not a silent skip). Everything else is
reported as skipped with a reason.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vqa_distill.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
FORMAT_MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image file found on disk; ``mime`` is None when the header was not recognised."""

    path: str
    rel_path: str
    sha256: str
    size_bytes: int
    mtime_ns: int  # with the size, what says the file is unchanged (and its cached hash still good)
    mime: str | None


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that is not an image (by content and by name), and why it was passed over."""

    path: str
    reason: str


def sniff_mime(path: Path) -> str | None:
    """Return the MIME type of a supported image format, read from the file header only."""
    try:
        with Image.open(path) as image:
            return FORMAT_MIME.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def file_sha256(path: Path) -> str:
    """Hash the file's bytes: the content half of every request key."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def walk_files(root: Path, skip: Path | None = None) -> Iterator[Path]:
    """Yield regular files under root in sorted order, following symlinks once, skipping hidden names and
    the folder ``skip`` (with what it holds)."""
    seen_dirs: set[tuple[int, int]] = set()
    if skip is not None and skip.is_dir():
        skipped = os.stat(skip)
        seen_dirs.add((skipped.st_dev, skipped.st_ino))  # met as if already visited: never entered
    for directory, dir_names, file_names in os.walk(root, followlinks=True):
        stat = os.stat(directory)
        identity = (stat.st_dev, stat.st_ino)
        if identity in seen_dirs:  # a symlink loop, a second link to a visited folder, or the skipped one
            dir_names.clear()
            continue
        seen_dirs.add(identity)
        dir_names[:] = sorted(d for d in dir_names if not d.startswith("."))
        for name in sorted(file_names):
            path = Path(directory, name)
            if not name.startswith(".") and path.is_file():
                yield path


HashLookup = Callable[[Path, os.stat_result], str | None]


def discover_images(
    root: str | Path, known_hash: HashLookup | None = None, run_folder: str | Path | None = None
) -> tuple[list[ImageRef], list[SkippedFile]]:
    """Return the image candidates and the skipped files under ``root``.

    ``known_hash(path, stat)`` may return a cached sha256 for an unchanged file, so that a rerun over
    thousands of answered photos does not re-read them all. ``run_folder`` is never walked: a run
    folder inside the images folder holds the pictures the teacher was sent (``images/``) and plots,
    which would otherwise be found as new images and paid for.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise ConfigError(f"image folder {root_path} does not exist or is not a folder")
    root_path = root_path.resolve()
    images: list[ImageRef] = []
    skipped: list[SkippedFile] = []
    skip = Path(run_folder).expanduser().resolve() if run_folder is not None else None
    for path in walk_files(root_path, skip):
        mime = sniff_mime(path)
        if mime is None and path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(SkippedFile(str(path), "not an image (unrecognised content and name)"))
            continue
        stat = path.stat()
        digest = (known_hash(path, stat) if known_hash else None) or file_sha256(path)
        images.append(
            ImageRef(
                path=str(path),
                rel_path=str(path.relative_to(root_path)),
                sha256=digest,
                size_bytes=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                mime=mime,
            )
        )
    return images, skipped
