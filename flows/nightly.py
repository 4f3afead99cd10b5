"""The ``nightly-refresh`` flow: ask about new or changed images only, version the dataset, maybe train.

New and changed images are found by content: the teacher run skips every request whose key (image
bytes, prompt, model, parameters) is answered in the run folder's ledger, so old images cost nothing.
When the rebuilt dataset differs from the newest version it is copied to ``<out>/versions/<date>/``
(``<date>.2``, ``.3``... for later runs on the same day); training reads that immutable copy.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import BaseModel

from flows.generate import generate
from flows.pipeline import (
    DEFAULT_HAND_OFF,
    HandOff,
    StudentOptions,
    TrainOutcome,
    teacher_summary,
    train_student,
)
from vqa_distill.dataset.build import STATS_FILE, TRAIN_FILE, VAL_FILE
from vqa_distill.errors import ConfigError
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.summary import RunSummary

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


class NightlyResult(BaseModel):
    """What one refresh did: the teacher run, the new version (None: unchanged), the training run."""

    teacher: RunSummary
    asked: int
    version: str | None
    version_path: str | None
    training: TrainOutcome | None = None


@flow(name="nightly-refresh", validate_parameters=True)
async def nightly_refresh(
    teacher: TeacherParams,
    student: StudentOptions | None = None,
    train_when_changed: bool = False,
    hand_off: HandOff = DEFAULT_HAND_OFF,
) -> NightlyResult:
    """Ask about new or changed images only, publish the dataset as a new dated version when it changed.

    Args:
        teacher: The teacher stage; its run folder keeps the ledger and the versions/ folder across nights.
        student: Training options, needed only with train_when_changed.
        train_when_changed: Fine-tune the student on the new version when the dataset changed.
        hand_off: Where training runs: on the GPU pool (default) or in this flow run.
    """
    logger = get_run_logger()
    if train_when_changed and student is None:
        raise ConfigError("train_when_changed needs the student options (at least model_id_or_path)")
    summary = await teacher_summary(await generate(teacher, return_state=True))
    asked = summary.requests - summary.already_answered - summary.not_asked
    version = publish_version(Path(teacher.out), date.today())
    logger.info(
        "asked %d request(s); dataset %s", asked, f"changed: version {version.name}" if version else "unchanged"
    )
    result = NightlyResult(
        teacher=summary,
        asked=asked,
        version=version.name if version else None,
        version_path=str(version.path.resolve()) if version else None,
    )
    may_train = not summary.failed or hand_off.despite_failed_images
    if version and train_when_changed and student is not None and may_train:
        val_file = version.val_file
        params = student.for_dataset(str(version.train_file), str(val_file) if val_file else None, teacher.out)
        result.training = await train_student(params, hand_off)
    if summary.failed:
        return Failed(  # type: ignore[return-value]
            message=f"{summary.failed} teacher request(s) failed (they are asked again next night, or retry now)",
            data=result,
        )
    return result
