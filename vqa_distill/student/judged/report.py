"""What an evaluation leaves behind: ``eval.json`` (machine-readable), ``eval.html`` (the page) and the chart.

The artifacts' contents are built here as plain data; ``flows/evaluate.py`` only publishes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_text
from vqa_distill.student.judged.chart import win_rate_chart_png, win_rate_markdown
from vqa_distill.student.judged.page import write_eval_page
from vqa_distill.student.judged.results import CaseResult
from vqa_distill.student.judged.summary import EvalSummary
from vqa_distill.student.plots import write_png

EVAL_JSON, EVAL_HTML, CHART_PNG = "eval.json", "eval.html", "win_rate.png"


@dataclass(frozen=True)
class JudgeCounts:
    """Judge calls: planned, answered from the ledger (paid before), asked now, failed; and verdicts given free."""

    planned: int
    from_ledger: int
    asked: int
    failed: int
    free: int


@dataclass(frozen=True)
class EvalFiles:
    """The report's files and the chart's PNG bytes (embedded in the artifact)."""

    json_path: Path
    html_path: Path
    chart_png: bytes
    chart_path: Path


def write_report(
    out: Path,
    results: Sequence[CaseResult],
    summary: EvalSummary,
    *,
    judge_model: str,
    counts: JudgeCounts,
    title: str,
) -> EvalFiles:
    """Write eval.json, eval.html and win_rate.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "title": title,
        "judge_model": judge_model,
        "judge_calls": counts.__dict__,
        "headline": summary.headline(),
        "summary": summary.to_json(),
        "cases": [result.to_json() for result in results],
    }
    json_path = out / EVAL_JSON
    atomic_write_text(json_path, json.dumps(document, indent=2, ensure_ascii=False))
    html_path = write_eval_page(out / EVAL_HTML, results, summary.table(), title=title)
    png = win_rate_chart_png(summary.rates, title=title)
    chart_path = write_png(png, out / CHART_PNG)
    return EvalFiles(json_path, html_path, png, chart_path)


def summary_markdown(summary: EvalSummary, files: EvalFiles, *, judge_model: str, counts: JudgeCounts) -> str:
    """The verdict in words, the means per model, the chart, and where the page is."""
    lines = [
        f"**{summary.headline()}**",
        "",
        f"Judge `{judge_model}`: {counts.planned} call(s) planned, {counts.from_ledger} answered from the ledger, "
        f"{counts.asked} asked now, {counts.failed} failed; {counts.free} verdict(s) decided by a degenerate answer "
        "without a call. Each pair is judged in both orders; a verdict that flips with the order is a tie. "
        "Intervals are 95 % Wilson intervals.",
        "",
        _markdown_table(summary.metric_rows()),
        "",
        win_rate_markdown(
            files.chart_png, caption=f"win-or-tie rate by question kind · `{files.chart_path}`"
        ),
        "",
        f"Side by side, worst losses first: [{files.html_path.name}](file://{files.html_path}) (`{files.html_path}`); "
        f"every number: `{files.json_path}`.",
    ]
    return "\n".join(lines)


def _markdown_table(rows: Sequence[dict[str, str]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys)
    return head + "".join("\n| " + " | ".join(row.get(k, "") for k in keys) + " |" for row in rows)


@dataclass(frozen=True)
class EvalOutcome:
    """What the evaluate flow returns: the verdict line, its rates, and where the report is."""

    headline: str
    cases: int
    win_or_tie_vs_teacher: float | None
    win_or_tie_vs_base: float | None
    teacher_low: float | None
    teacher_high: float | None
    rouge_l: float | None  # the student's mean ROUGE-L against the teacher
    degenerate: int
    json_path: str
    html_path: str

    @classmethod
    def of(cls, summary: EvalSummary, files: EvalFiles) -> EvalOutcome:
        """The outcome of a finished evaluation."""
        overall = summary.rates.get("all", {})
        teacher, base = overall.get("teacher"), overall.get("base")
        return cls(
            headline=summary.headline(),
            cases=summary.cases,
            win_or_tie_vs_teacher=teacher.rate if teacher else None,
            win_or_tie_vs_base=base.rate if base else None,
            teacher_low=teacher.low if teacher else None,
            teacher_high=teacher.high if teacher else None,
            rouge_l=summary.rouge_l.get("student"),
            degenerate=summary.degenerate.get("student", 0),
            json_path=str(files.json_path),
            html_path=str(files.html_path),
        )
