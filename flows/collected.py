"""What ``collect-batches`` does with a run folder it collected: publish a dated version, and train on it when asked."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel

from flows.handoff import train_student
from vqa_distill.dataset.versions import publish_version
from vqa_distill.student.handoff import HandOff, StudentOptions, TrainOutcome
from vqa_distill.teacher.run.summary import RunSummary


class CollectedRun(BaseModel):
    """One run folder's collect: its summary, the new dataset version (None: unchanged), the training run."""

    summary: RunSummary
    version: str | None = None
    training: TrainOutcome | None = None


async def publish_collected(
    out: str, summary: RunSummary, publish_versions: bool, train_when_changed: bool,
    student: StudentOptions | None, hand_off: HandOff,
) -> CollectedRun:
    """Publish a collected run's dataset as a version, and train on it when asked."""
    version = publish_version(Path(out), date.today()) if publish_versions else None
    run = CollectedRun(summary=summary, version=version.name if version else None)
    if version and train_when_changed and student is not None and (not summary.failed or hand_off.despite_failed_images):
        val = str(version.val_file) if version.val_file else None
        run.training = await train_student(student.for_dataset(str(version.train_file), val, out), hand_off)
    return run
