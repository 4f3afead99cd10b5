"""The training options of a pipeline run and where its training step runs: typed, for the UI's form."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from vqa_distill.errors import DatasetError
from vqa_distill.student.params import TrainParams

if TYPE_CHECKING:  # the command line reads these models to register its flags: no openai or database import
    from vqa_distill.teacher.run.summary import RunSummary

DEFAULT_TRAIN_DEPLOYMENT = "train/train"
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


def dataset_files(summary: RunSummary) -> tuple[str, str | None]:
    """Return the train and val files of the teacher run; refuses a dataset with no rows."""
    dataset = summary.dataset
    if dataset is None or dataset.train_rows == 0:
        raise DatasetError(f"the teacher run into {summary.out} produced no training rows")
    return dataset.train_path, dataset.val_path if dataset.val_rows else None
