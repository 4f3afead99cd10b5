"""The ``nightly-refresh`` flow: ask about new or changed images only, version the dataset, maybe train.

New and changed images are found by content: the teacher run skips every request whose key (image
bytes, prompt, model, parameters) is answered in the run folder's ledger, so old images cost nothing.
When the rebuilt dataset differs from the newest version it is copied to ``<out>/versions/<date>/``
(``<date>.2``, ``.3``... for later runs on the same day); training reads that immutable copy.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import BaseModel

from flows.generate import generate
from flows.handoff import teacher_summary, train_student
from vqa_distill.dataset.versions import publish_version
from vqa_distill.errors import ConfigError
from vqa_distill.student.handoff import DEFAULT_HAND_OFF, HandOff, StudentOptions, TrainOutcome
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.summary import RunSummary


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
    # In batch mode the answers are not in yet: collect-batches publishes the version once they are.
    version = None if teacher.batch else publish_version(Path(teacher.out), date.today())
    logger.info(
        "asked %d request(s); dataset %s", asked, f"changed: version {version.name}" if version else "unchanged"
    )
    if teacher.batch:
        logger.info("batch mode: collect-batches records the answers, publishes the version and trains when asked")
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
