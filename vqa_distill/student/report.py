"""The contents of a training run's Prefect artifacts, built as plain data (the flow only publishes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqa_distill.student.device import choose_dtype
from vqa_distill.student.evaluate import EvalReport
from vqa_distill.student.plots import loss_curve_png, markdown_image, write_png
from vqa_distill.student.results import TrainSummary
from vqa_distill.student.training import Prepared

LOSS_PNG = "loss.png"


def metrics_rows(
    prepared: Prepared, summary: TrainSummary, evaluation: EvalReport | None, merged: str | None
) -> list[dict[str, Any]]:
    """The metrics table: one ``{"metric", "value"}`` row per figure worth a glance."""
    params = prepared.params
    values: dict[str, Any] = {
        "model": prepared.model.model,
        "model_type / template": f"{prepared.model.model_type} / {prepared.model.template}",
        "tuner": params.tuner,
        "device": prepared.device.describe(),
        "torch_dtype": choose_dtype(params.torch_dtype, prepared.device),
        "rows checked": prepared.total_rows,
        "rows dropped (--skip-bad-rows)": prepared.dropped_rows,
        "longest row (tokens)": prepared.max_tokens,
        "max_pixels": prepared.pixels.describe(),
        **summary.metrics(),
        "merged_model": merged,
    }
    if evaluation is not None:
        values.update(evaluation.summary())
    return [{"metric": key, "value": "" if value is None else str(value)} for key, value in values.items()]


def loss_markdown(summary: TrainSummary) -> tuple[str, Path]:
    """Draw the loss curve into the run directory; returns (markdown with the PNG inline, the PNG path)."""
    png = loss_curve_png(summary.loss_points, summary.eval_points, title=Path(summary.run_dir).name)
    path = write_png(png, Path(summary.run_dir) / LOSS_PNG)
    return markdown_image(png, alt="loss curve", caption=f"`{path}` · checkpoint `{summary.checkpoint}`"), path


def eval_markdown(evaluation: EvalReport | None) -> str:
    """A one-paragraph verdict: how close the student is to the teacher, beside the base model."""
    if evaluation is None:
        return "No evaluation: no validation rows, or `--eval_limit 0`."
    summary = evaluation.summary()
    base = summary["base_rougeL"]
    line = f"ROUGE-L against the teacher on {summary['eval_rows']} validation row(s): student **{summary['student_rougeL']}**"
    return line + (f", base model {base}." if base is not None else ".")
