"""The training stage's tasks: a CPU preparation (model, device, dataset check), then GPU-tagged training, merging and evaluation.

``tags=["gpu"]`` lets a tag concurrency limit (one per GPU) and the ``gpu-pool`` deployment keep GPU
work where the GPUs are. No retries: a failed training run is a fatal error to read, not a blip,
and re-running it would spend the same GPU hours again. No caching either: every call is new work.
"""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from vqa_distill.student import training
from vqa_distill.student.evaluate import EvalReport
from vqa_distill.student.merge_check import MergeCheck
from vqa_distill.student.params import TrainParams
from vqa_distill.student.results import TrainSummary

# ms-swift lines worth a place in the Prefect log (the full output is in the run's swift-*.log).
_WORTH_LOGGING = re.compile(r"^\{'|^\[ERROR|Traceback|Error:|last_model_checkpoint|infer_worker:")


def _model_name() -> str:
    """The model's directory or hub name, for run names such as ``train[Qwen2.5-VL-3B-Instruct]``."""
    params = task_run.parameters.get("params")
    prepared = task_run.parameters.get("prepared")
    source = params if params is not None else prepared.params
    return str(source.model_id_or_path).rstrip("/").rsplit("/", 1)[-1]


def _forward(line: str) -> None:
    """Send metric lines, warnings and errors of the child process to the task's Prefect log."""
    if _WORTH_LOGGING.search(line):
        get_run_logger().info(line)


@task(
    name="prepare-training", task_run_name=lambda: f"prepare-training[{_model_name()}]", cache_policy=NO_CACHE
)
def prepare_training(params: TrainParams) -> training.Prepared:
    """Resolve the model, probe the device and check every row; refuses before any GPU time is spent."""
    return training.prepare(params, log=get_run_logger().info)


@task(
    name="train-student", task_run_name=lambda: f"train[{_model_name()}]", tags=["gpu"], cache_policy=NO_CACHE
)
def train_student(prepared: training.Prepared) -> TrainSummary:
    """Fine-tune with ``swift sft``; returns the run's summary (checkpoint, losses, throughput)."""
    return training.train(prepared, on_line=_forward)


@task(
    name="merge-adapter", task_run_name=lambda: f"merge[{_model_name()}]", tags=["gpu"], cache_policy=NO_CACHE
)
def merge_adapter(prepared: training.Prepared, summary: TrainSummary) -> str:
    """Merge the adapter into the base model with ``swift export``; returns the merged directory."""
    return training.merge(prepared, summary, on_line=_forward)


@task(
    name="check-merge",
    task_run_name=lambda: f"check-merge[{_model_name()}]",
    tags=["gpu"],
    cache_policy=NO_CACHE,
)
def check_merge(prepared: training.Prepared, summary: TrainSummary, merged: str) -> MergeCheck | None:
    """Answer a few rows with the adapter and with the merged model; warn, naming the rows, when they differ."""
    result = training.check_merge(prepared, summary, merged, on_line=_forward)
    if result is not None:
        logger = get_run_logger()
        (logger.info if result.ok else logger.warning)(result.message())
    return result


@task(
    name="evaluate-student",
    task_run_name=lambda: f"evaluate[{_model_name()}]",
    tags=["gpu"],
    cache_policy=NO_CACHE,
)
def evaluate_student(prepared: training.Prepared, summary: TrainSummary) -> EvalReport | None:
    """Answer validation rows with the student and the base model; score both against the teacher."""
    return training.evaluate(prepared, summary, on_line=_forward)
