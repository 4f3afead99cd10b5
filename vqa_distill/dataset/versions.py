"""Dated, immutable versions of a run folder's dataset: ``<out>/versions/<YYYY-MM-DD>[.N]/``.

A version is published only when the dataset differs from the newest one (compared by content), and
is written to a hidden folder first and renamed into place, so a version is never half-written and
training on it is reproducible.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from vqa_distill.dataset.build import STATS_FILE, TRAIN_FILE, VAL_FILE

VERSIONS_DIR = "versions"
DATASET_FILES = (TRAIN_FILE, VAL_FILE)  # what "changed" compares; the stats file follows them
_VERSION_NAME = re.compile(r"^(?P<day>\d{4}-\d{2}-\d{2})(?:\.(?P<n>\d+))?$")


@dataclass(frozen=True)
class DatasetVersion:
    """One published dataset version: its name and folder."""

    name: str
    path: Path

    @property
    def train_file(self) -> Path:
        return self.path / TRAIN_FILE

    @property
    def val_file(self) -> Path | None:
        val = self.path / VAL_FILE
        return val if val.is_file() else None


def _order(name: str) -> tuple[str, int] | None:
    match = _VERSION_NAME.match(name)
    return (match.group("day"), int(match.group("n") or 1)) if match else None


def list_versions(out: Path) -> list[DatasetVersion]:
    """Return the published versions of a run folder, oldest first (folders not named like one are ignored)."""
    root = out / VERSIONS_DIR
    if not root.is_dir():
        return []
    named = [(order, p) for p in root.iterdir() if p.is_dir() and (order := _order(p.name)) is not None]
    return [DatasetVersion(p.name, p) for _, p in sorted(named)]


def dataset_digest(folder: Path) -> str:
    """Hash the dataset files of a folder (train and val), so equal datasets compare equal."""
    digest = hashlib.sha256()
    for name in DATASET_FILES:
        path = folder / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
        digest.update(b"\0")
    return digest.hexdigest()


def next_version_name(out: Path, day: date) -> str:
    """Return ``YYYY-MM-DD`` for the day's first version, then ``YYYY-MM-DD.2``, ``.3``..."""
    taken = [order[1] for v in list_versions(out) if (order := _order(v.name)) and order[0] == day.isoformat()]
    return day.isoformat() if not taken else f"{day.isoformat()}.{max(taken) + 1}"


def publish_version(out: Path, day: date) -> DatasetVersion | None:
    """Copy the run folder's dataset to a new version when it differs from the newest; None when unchanged.

    Written to a hidden folder first and renamed into place, so a version folder is never half-written.
    """
    versions = list_versions(out)
    if versions and dataset_digest(versions[-1].path) == dataset_digest(out):
        return None
    name = next_version_name(out, day)
    final = out / VERSIONS_DIR / name
    staging = out / VERSIONS_DIR / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in (*DATASET_FILES, STATS_FILE):
        if (out / file).is_file():
            shutil.copy2(out / file, staging / file)
    staging.rename(final)
    return DatasetVersion(name, final)
