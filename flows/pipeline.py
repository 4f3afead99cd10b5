"""The whole DAG for a one-click run from the UI: ask the teacher, build the dataset, train the student.

Training is handed to the GPU pool with ``run_deployment`` (a linked subflow run of the ``train``
deployment, which a ``gpu-pool`` worker picks up), unless told to train in this flow run. When some
images failed the pipeline stops before training and ends Failed: a partial dataset would spend GPU
hours that a retry (which re-asks only the failed images) would spend again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed, State
from pydantic import BaseModel, ConfigDict, Field

from flows.generate import generate
from vqa_distill.errors import DatasetError, FatalRunError
from vqa_distill.student.params import TrainParams
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.summary import RunSummary

DEFAULT_TRAIN_DEPLOYMENT = "train/train"
TRAIN_POLL_S = 2.0  # how often the pipeline looks at the training run it handed off
CHECKPOINTS_DIR = "checkpoints"


class StudentOptions(TrainParams):
    """The training options of a pipeline run: TrainParams whose dataset the teacher stage supplies."""

    dataset: list[str] = Field(
        default_factory=list, description="Leave empty: the teacher stage's train.jsonl is used."
    )
    output_dir: str = Field(
        default="", description="Where ms-swift writes its versioned run directory; empty: <teacher out>/checkpoints."
    )

    def for_dataset(self, train_file: str, val_file: str | None, run_folder: str) -> TrainParams:
        """Return the TrainParams of one training run on the teacher's files, with absolute paths.

        Absolute, because a GPU worker on another machine does not share this run's working directory.
        """
        values = self.model_dump()
        values["dataset"] = [str(Path(p).resolve()) for p in (self.dataset or [train_file])]
        if not self.val_dataset and val_file:
            values["val_dataset"] = [str(Path(val_file).resolve())]
        values["output_dir"] = str(Path(self.output_dir or Path(run_folder) / CHECKPOINTS_DIR).resolve())
        return TrainParams(**values)


class HandOff(BaseModel):
    """Where and when the training step runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_process: bool = Field(
        default=False, description="Train inside this flow run, on this machine, instead of on the GPU pool."
    )
    deployment: str = Field(
        default=DEFAULT_TRAIN_DEPLOYMENT, description="The deployment ('flow/deployment') that trains on the GPU pool."
    )
    despite_failed_images: bool = Field(
        default=False,
        description="Train on the answered images even when some failed (default: stop before training, so "
        "that a retry re-asks them first and the GPU time is spent once).",
    )


DEFAULT_HAND_OFF = HandOff()


class TrainOutcome(BaseModel):
    """Where the adapter went, and which flow run trained it."""

    checkpoint: str | None
    train_flow_run_id: str | None = None


class PipelineResult(BaseModel):
    """What one pipeline run produced."""

    teacher: RunSummary
    training: TrainOutcome | None = None


async def teacher_summary(state: State[Any]) -> RunSummary:
    """Return the teacher run's summary, Failed or not; re-raise the error that stopped it altogether."""
    result = await state.aresult(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return RunSummary.model_validate(result)


def dataset_files(summary: RunSummary) -> tuple[str, str | None]:
    """Return the train and val files of the teacher run; refuses a dataset with no rows."""
    dataset = summary.dataset
    if dataset is None or dataset.train_rows == 0:
        raise DatasetError(f"the teacher run into {summary.out} produced no training rows")
    return dataset.train_path, dataset.val_path if dataset.val_rows else None


async def train_student(params: TrainParams, hand_off: HandOff) -> TrainOutcome:
    """Train in this flow run, or hand the run to the GPU pool's deployment and wait for it."""
    logger = get_run_logger()
    if hand_off.in_process:
        from flows.train import train

        # A sync flow: run it off the event loop; it still shows as a subflow run of this one.
        checkpoint = await asyncio.to_thread(train, params)
        return TrainOutcome(checkpoint=str(checkpoint))
    from prefect.deployments import arun_deployment

    logger.info("handing training to deployment %s (waits for a worker on its pool)", hand_off.deployment)
    run = await arun_deployment(
        hand_off.deployment,
        parameters={"params": params.model_dump(mode="json")},
        timeout=None,
        poll_interval=TRAIN_POLL_S,
    )
    state = run.state
    if state is None or not state.is_completed():
        name, message = (state.name, state.message) if state else ("unknown", None)
        raise FatalRunError(f"training run {run.name} ({run.id}) ended {name}: {message or 'no message'}")
    result = await state.aresult(raise_on_failure=False)
    if not isinstance(result, str):  # results not persisted where this worker can read them
        logger.warning("training run %s completed; its checkpoint path is in its logs and artifacts", run.name)
    return TrainOutcome(checkpoint=result if isinstance(result, str) else None, train_flow_run_id=str(run.id))


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
