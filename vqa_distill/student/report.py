"""The contents of a training run's Prefect artifacts, built as plain data (the flow only publishes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqa_distill.student.device import choose_dtype
from vqa_distill.student.evaluate import EvalReport
from vqa_distill.student.merge_check import MergeCheck
from vqa_distill.student.plots import loss_curve_png, markdown_image, write_png
from vqa_distill.student.results import TrainSummary
from vqa_distill.student.training import Prepared

LOSS_PNG = "loss.png"
EXAMPLES = 3  # rows shown side by side under the evaluation verdict
EXAMPLE_CHARS = 160  # answers are cut to this length there
VISIBLE_WHITESPACE = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})  # an answer of newlines shows


def metrics_rows(
    prepared: Prepared,
    summary: TrainSummary,
    evaluation: EvalReport | None,
    merged: str | None,
    merge_check: MergeCheck | None = None,
) -> list[dict[str, Any]]:
    """The metrics table: one ``{"metric", "value"}`` row per figure worth a glance."""
    params = prepared.params
    share = prepared.drop_share
    values: dict[str, Any] = {
        "model": prepared.model.model,
        "model_type / template": f"{prepared.model.model_type} / {prepared.model.template}",
        "tuner": params.tuner,
        "device": prepared.device.describe(),
        "torch_dtype": choose_dtype(params.torch_dtype, prepared.device),
        "rows checked": prepared.total_rows,
        "rows dropped (--skip-bad-rows)": prepared.dropped_rows,
        "drop share (bad rows / limit)": f"{share.rows}/{share.total} ({100 * share.share:.1f} % / {100 * params.max_drop_share:.1f} %)",
        "longest row (tokens)": prepared.max_tokens,
        "max_pixels": prepared.pixels.describe(),
        **summary.metrics(),
        "merged_model": merged,
    }
    if merged is not None:
        values["merge check"] = merge_check.verdict() if merge_check is not None else "off"
    if evaluation is not None:
        values.update(evaluation.summary())
    return [{"metric": key, "value": "" if value is None else str(value)} for key, value in values.items()]


def loss_markdown(summary: TrainSummary) -> tuple[str, Path]:
    """Draw the loss curve into the run directory; returns (markdown with the PNG inline, the PNG path)."""
    png = loss_curve_png(summary.loss_points, summary.eval_points, title=Path(summary.run_dir).name)
    path = write_png(png, Path(summary.run_dir) / LOSS_PNG)
    return markdown_image(
        png, alt="loss curve", caption=f"`{path}` · checkpoint `{summary.checkpoint}`"
    ), path


def eval_markdown(evaluation: EvalReport | None) -> str:
    """The verdict (student vs teacher, beside the base model), a warning per degenerate model, a few examples.

    The warnings come right after the scores: a 0 from a model that answered only newlines is no result.
    """
    if evaluation is None:
        return "No evaluation: no validation rows, or `--eval_limit 0`."
    summary = evaluation.summary()
    base = summary["base_rougeL"]
    line = f"ROUGE-L against the teacher on {summary['eval_rows']} validation row(s): student **{summary['student_rougeL']}**"
    parts = [line + (f", base model {base}." if base is not None else ".")]
    parts += [f"**Warning:** {warning}." for warning in evaluation.warnings()]
    if evaluation.rows:
        parts.append(examples_markdown(evaluation))
    return "\n\n".join(parts)


def examples_markdown(evaluation: EvalReport, limit: int = EXAMPLES) -> str:
    """The first ``limit`` rows side by side (teacher / student / base), whitespace made visible."""
    with_base = evaluation.base is not None
    header = "| image | teacher | student |" + (" base |" if with_base else "")
    rule = "|---|---|---|" + ("---|" if with_base else "")
    lines = [
        f"Side by side, {min(limit, len(evaluation.rows))} of {len(evaluation.rows)} row(s):",
        "",
        header,
        rule,
    ]
    student_flags, base_flags = evaluation.student_degenerate, evaluation.base_degenerate
    for index, row in enumerate(evaluation.rows[:limit]):
        image = ", ".join(Path(p).name for p in row.images)
        cells = [image, _cell(row.reference, None), _cell(evaluation.student[index], student_flags[index])]
        if evaluation.base is not None and base_flags is not None:
            cells.append(_cell(evaluation.base[index], base_flags[index]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: str, degenerate: str | None) -> str:
    """One answer as a markdown table cell: escaped, cut, and marked when degenerate."""
    shown = text.translate(VISIBLE_WHITESPACE)
    if len(shown) > EXAMPLE_CHARS:
        shown = shown[: EXAMPLE_CHARS - 1] + "…"
    shown = shown.replace("|", "\\|") or " "
    return f"{shown} *({degenerate})*" if degenerate else shown
