"""The win-rate chart: the student's win-or-tie rate against each opponent, per question kind, as a PNG.

Grouped bars with their 95 % Wilson intervals, so a small kind's wide interval is seen before its rate
is believed; the dashed line at 0.5 is parity with the opponent. Drawn with matplotlib's Agg backend
like ``plots.py`` (no display on workers) and embedded in the evaluation's Prefect artifact.
"""

from __future__ import annotations

from collections.abc import Mapping

from vqa_distill.student.judged.results import OPPONENTS, RateWithCI
from vqa_distill.student.plots import figure_png, markdown_image, new_figure

ALL_KINDS = "all"  # the key of the overall rate, drawn last
PARITY = 0.5
OPPONENT_COLOURS = {"teacher": "#4c72b0", "base": "#dd8452"}
OTHER_COLOUR = "#8c8c8c"
GROUP_WIDTH = 0.8  # of one x unit, shared by a kind's bars
LABEL_MIN_HEIGHT = 0.12  # bars at least this tall carry their rate inside


def _kinds(by_kind: Mapping[str, Mapping[str, RateWithCI]]) -> list[str]:
    """The kinds in the caller's order, with ``all`` moved to the end."""
    return [k for k in by_kind if k != ALL_KINDS] + ([ALL_KINDS] if ALL_KINDS in by_kind else [])


def _opponents(by_kind: Mapping[str, Mapping[str, RateWithCI]]) -> list[str]:
    """The opponents any kind has: the known ones in their usual order, then any other."""
    present = list(dict.fromkeys(o for rates in by_kind.values() for o in rates))
    return [o for o in OPPONENTS if o in present] + [o for o in present if o not in OPPONENTS]


def _tick_label(kind: str, rates: Mapping[str, RateWithCI], opponents: list[str]) -> str:
    """``kind`` over its n; one n per opponent when they differ (``n=12/9`` in legend order)."""
    ns = [str(rates[o].n) for o in opponents if o in rates]
    return f"{kind}\nn={ns[0]}" if len(set(ns)) == 1 else f"{kind}\nn={'/'.join(ns)}"


def win_rate_chart_png(by_kind: Mapping[str, Mapping[str, RateWithCI]], *, title: str) -> bytes:
    """Render ``by_kind`` (kind -> opponent -> rate) as grouped bars with Wilson error bars; returns PNG bytes."""
    kinds = _kinds(by_kind)
    opponents = _opponents(by_kind)
    figure = new_figure(max(6.4, 1.3 * len(kinds) + 2.0), 3.8)
    axes = figure.add_subplot()
    width = GROUP_WIDTH / max(len(opponents), 1)
    for slot, opponent in enumerate(opponents):
        xs: list[float] = []
        heights: list[float] = []
        below: list[float] = []
        above: list[float] = []
        for group, kind in enumerate(kinds):
            rate = by_kind[kind].get(opponent)
            if rate is None:
                continue
            xs.append(group - GROUP_WIDTH / 2 + width * (slot + 0.5))
            heights.append(rate.rate)
            below.append(max(rate.rate - rate.low, 0.0))
            above.append(max(rate.high - rate.rate, 0.0))
        colour = OPPONENT_COLOURS.get(opponent, OTHER_COLOUR)
        axes.bar(xs, heights, width, yerr=[below, above], capsize=3, color=colour, label=f"vs {opponent}")
        for x, height in zip(xs, heights, strict=True):
            if height >= LABEL_MIN_HEIGHT:  # a lower bar has no room for its number
                axes.text(x, height / 2, f"{height:.2f}", ha="center", va="center", fontsize=7, color="white")
    if not kinds:
        axes.text(0.5, 0.5, "no verdicts", ha="center", va="center", transform=axes.transAxes)
    axes.axhline(PARITY, linestyle="--", color="#444", linewidth=1)
    axes.set_xticks(range(len(kinds)), [_tick_label(k, by_kind[k], opponents) for k in kinds], fontsize=8)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("win-or-tie rate")
    axes.set_title(title, fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    if opponents:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach 1
    figure.tight_layout()
    return figure_png(figure)


def win_rate_markdown(png: bytes, caption: str) -> str:
    """Markdown that shows the chart inline, for the evaluation's Prefect artifact."""
    return markdown_image(png, alt="student win-or-tie rate by kind", caption=caption)
