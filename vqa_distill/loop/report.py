"""The loop's artifacts as plain data: one table row per round, and the win-or-tie rate against spend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vqa_distill.loop.state import RoundRecord
from vqa_distill.student.plots import figure_png, new_figure


def round_rows(rounds: Sequence[RoundRecord]) -> list[dict[str, Any]]:
    """The per-round table: spend, rows added by reason, the verdict with its interval, ROUGE-L, degenerate answers."""
    rows = []
    for record in rounds:
        rate = "" if record.win_or_tie is None else (
            f"{record.win_or_tie:.2f} [{record.win_or_tie_low or 0:.2f}, {record.win_or_tie_high or 0:.2f}]"
        )  # fmt: skip
        rows.append({
            "round": record.round,
            "teacher spend (USD, total)": f"{record.spend_usd:.4f}",
            "teacher requests (total)": record.requests,
            "judge spend (USD)": f"{record.judge_spend_usd:.4f}",
            "rows added": ", ".join(f"{reason} {count}" for reason, count in record.rows_added.items()) or "none",
            "train rows": record.train_rows,
            "win-or-tie vs teacher [95% CI]": rate,
            "ROUGE-L": "" if record.rouge_l is None else f"{record.rouge_l:.3f}",
            "degenerate": f"{record.degenerate} of {record.cases}",
            "stop": record.stop_reason or "",
        })  # fmt: skip
    return rows


def curve_png(arms: dict[str, Sequence[tuple[float, float, float, float]]], *, title: str, x_label: str) -> bytes:
    """Win-or-tie rate (with its interval) against spend, one line per arm: points are (x, rate, low, high)."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, points in arms.items():
        if not points:
            continue
        xs, rates, lows, highs = zip(*points, strict=True)
        axes.plot(xs, rates, marker="o", label=name)
        axes.fill_between(xs, lows, highs, alpha=0.15)
    axes.set_ylim(0, 1)
    axes.set_xlabel(x_label)
    axes.set_ylabel("win-or-tie vs teacher")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    if len(arms) > 1:
        axes.legend(fontsize=8)
    return figure_png(figure, tight=True)


def loop_curve(rounds: Sequence[RoundRecord]) -> bytes:
    """The loop's own curve: win-or-tie rate per round against the teacher's spend."""
    points = [
        (r.spend_usd, r.win_or_tie, r.win_or_tie_low or 0.0, r.win_or_tie_high or 1.0)
        for r in rounds
        if r.win_or_tie is not None
    ]
    return curve_png({"loop": points}, title="win-or-tie rate against teacher spend", x_label="teacher spend (USD)")
