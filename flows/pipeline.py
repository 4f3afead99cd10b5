"""The ``pipeline`` flow, the whole DAG in one click: ask the teacher, build the dataset, train the student.

Training goes to the GPU pool (a linked run of the ``train`` deployment) unless told to train in this
flow run. When some images failed the pipeline stops before training and ends Failed: a partial
dataset would spend GPU hours that a retry (which re-asks only the failed images) would spend again.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import BaseModel

from flows.generate import generate
from flows.handoff import teacher_summary, train_student
from vqa_distill.errors import ConfigError
from vqa_distill.student.handoff import DEFAULT_HAND_OFF, HandOff, StudentOptions, TrainOutcome, dataset_files
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.summary import RunSummary


class PipelineResult(BaseModel):
    """What one pipeline run produced."""

    teacher: RunSummary
    training: TrainOutcome | None = None


@flow(name="pipeline", validate_parameters=True)
async def pipeline(
    teacher: TeacherParams, student: StudentOptions, train: bool = True, hand_off: HandOff = DEFAULT_HAND_OFF
) -> PipelineResult:
    """Ask the teacher about every new image, build the dataset, and fine-tune the student on it.

    Args:
        teacher: The teacher stage: images, prompts, endpoint, rate limits, dataset split.
        student: The training stage: student model, tuner and hyper-parameters (dataset comes from the teacher).
        train: Fine-tune the student once the dataset is built (off: stop after the dataset).
        hand_off: Where training runs: on the GPU pool (default) or in this flow run.
    """
    logger = get_run_logger()
    if teacher.batch:  # answers arrive within 24 h: training now would use only what is already answered
        message = "the pipeline trains right after asking; for batch mode run generate with batch, then collect-batches"
        logger.error(message)
        return Failed(message=message, data=ConfigError(message))  # type: ignore[return-value]
    summary = await teacher_summary(await generate(teacher, return_state=True))
    if summary.failed and not (train and hand_off.despite_failed_images):
        return Failed(  # type: ignore[return-value]
            message=f"{summary.failed} teacher request(s) failed; not training on a partial dataset. "
            "Retry this run (or run retry-failed) to re-ask only them.",
            data=PipelineResult(teacher=summary),
        )
    if not train:
        return PipelineResult(teacher=summary)
    train_file, val_file = dataset_files(summary)
    logger.info("dataset: %s (%d rows)", train_file, summary.dataset.train_rows if summary.dataset else 0)
    outcome = await train_student(student.for_dataset(train_file, val_file, teacher.out), hand_off)
    logger.info("checkpoint: %s", outcome.checkpoint)
    result = PipelineResult(teacher=summary, training=outcome)
    if summary.failed:
        return Failed(  # type: ignore[return-value]
            message=f"trained on the answered images; {summary.failed} teacher request(s) failed", data=result
        )
    return result
