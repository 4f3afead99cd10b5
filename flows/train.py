"""The student stage as a Prefect flow: check the data, fine-tune, merge (and check it), evaluate, report.

Training runs in a GPU-tagged task; the checks before it need no GPU, so a bad row or a missing
model is refused before a GPU is taken. The flow returns the checkpoint path (the adapter, or the
whole model for full fine-tuning).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.train import check_merge, evaluate_student, merge_adapter, prepare_training, train_student
from vqa_distill.student.params import TrainParams
from vqa_distill.student.report import eval_markdown, loss_markdown, metrics_rows

LOSS_KEY = "train-loss"
METRICS_KEY = "train-metrics"
EVAL_KEY = "train-eval"


@flow(name="train", validate_parameters=True)
def train(params: TrainParams) -> str:
    """Fine-tune the student on the teacher's dataset; returns the checkpoint directory.

    Args:
        params: Every `vqa-distill train` option: dataset, student model, tuner, hyper-parameters,
            devices, evaluation. The original training script's flags keep their names and defaults.
    """
    logger = get_run_logger()
    prepared = prepare_training(params)
    summary = train_student(prepared)
    logger.info("checkpoint: %s", summary.checkpoint)
    merged = merge_adapter(prepared, summary) if params.merge else None
    # Before anyone uses the merged model: does it answer as the adapter does?
    merge_check = check_merge(prepared, summary, merged) if merged and params.merge_check_rows else None
    evaluation = evaluate_student(prepared, summary)

    markdown, png_path = loss_markdown(summary)
    create_markdown_artifact(key=LOSS_KEY, markdown=markdown, description=f"Loss curve ({png_path})")
    create_table_artifact(
        key=METRICS_KEY,
        table=metrics_rows(prepared, summary, evaluation, merged, merge_check),
        description=f"Training run {summary.run_dir}",
    )
    # Created on every run, empty without evaluation: a keyed artifact's latest version must be this run's.
    create_table_artifact(
        key=EVAL_KEY,
        table=evaluation.table() if evaluation is not None else [],
        description=eval_markdown(evaluation),
    )
    logger.info(eval_markdown(evaluation))
    for warning in evaluation.warnings() if evaluation is not None else []:
        logger.warning(warning)  # a score of 0 from answers that are all newlines means nothing
    return summary.checkpoint
