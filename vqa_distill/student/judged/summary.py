"""The numbers of an evaluation: win-or-tie rates with their intervals, overall, per question kind, per prompt.

A rate is over the cases with a verdict (judged, or decided by a degenerate answer); the cases the
judge never answered are counted apart, as ``unjudged``, and left out of the rate rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vqa_distill.student.judged.results import OPPONENTS, CaseResult, RateWithCI
from vqa_distill.student.metrics import mean_or_none, rate_of

ALL = "all"


@dataclass(frozen=True)
class EvalSummary:
    """Headline figures: ``rates[group][opponent]`` (group "all", a kind, or "prompt: ..."), means and counts."""

    cases: int
    rates: dict[str, dict[str, RateWithCI]]
    kinds: list[str]
    prompts: list[str]
    rubric: dict[str, float | None]
    rouge_l: dict[str, float | None]
    exact: dict[str, float | None]
    exact_cases: int
    degenerate: dict[str, int]
    unjudged: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The summary as ``eval.json`` holds it (each rate with its n)."""
        data = asdict(self)
        data["rates"] = {
            g: {o: {**asdict(r), "n": r.n} for o, r in by.items()} for g, by in self.rates.items()
        }
        return data

    def headline(self) -> str:
        """``student vs teacher: win-or-tie 0.67 [0.21, 0.94] (n=3); vs base: 1.00 ...; degenerate: 0 of 3``."""
        overall = self.rates.get(ALL, {})
        parts = []
        for opponent in OPPONENTS:
            if opponent in overall:
                rate = overall[opponent]
                label = "student vs teacher: win-or-tie" if opponent == "teacher" else "vs base:"
                parts.append(f"{label} {rate.rate:.2f} [{rate.low:.2f}, {rate.high:.2f}] (n={rate.n})")
        parts.append(f"degenerate: {self.degenerate.get('student', 0)} of {self.cases}")
        return "; ".join(parts)

    def table(self) -> list[dict[str, str]]:
        """One row per group (all, each kind, each prompt): the rates, with n and interval, per opponent."""
        rows = []
        for group, by in self.rates.items():
            row = {"group": group, "rows": str(max((r.n for r in by.values()), default=0))}
            for opponent in OPPONENTS:
                rate = by.get(opponent)
                row[f"vs {opponent}: win/tie/loss"] = f"{rate.wins}/{rate.ties}/{rate.losses}" if rate else ""
                row[f"vs {opponent}: win-or-tie [95% CI]"] = (
                    f"{rate.rate:.2f} [{rate.low:.2f}, {rate.high:.2f}]" if rate else ""
                )
            rows.append(row)
        return rows

    def metric_rows(self) -> list[dict[str, str]]:
        """The per-model means: rubric, ROUGE-L, exact match, degenerate answers, unjudged pairs."""
        rows = []
        for model in ("student", "base"):
            if model not in self.rouge_l:
                continue
            rows.append({
                "model": model,
                "rubric 1-5 (mean)": _show(self.rubric.get(model)),
                "ROUGE-L vs teacher (mean)": _show(self.rouge_l.get(model)),
                f"exact match ({self.exact_cases} short answers)": _show(self.exact.get(model)),
                "degenerate answers": f"{self.degenerate.get(model, 0)} of {self.cases}",
            })  # fmt: skip
        return rows


def summarize(results: Sequence[CaseResult]) -> EvalSummary:
    """Count the verdicts per group and average the scores per model."""
    kinds = sorted({r.case.kind for r in results})
    prompts = sorted({r.case.prompt for r in results})
    groups: list[tuple[str, Callable[[CaseResult], bool]]] = [(ALL, lambda r: True)]
    groups += [(kind, lambda r, k=kind: r.case.kind == k) for kind in kinds]  # type: ignore[misc]
    if len(prompts) > 1:
        groups += [(f"prompt: {p}", lambda r, p=p: r.case.prompt == p) for p in prompts]  # type: ignore[misc]
    rates: dict[str, dict[str, RateWithCI]] = {}
    for name, member in groups:
        chosen = [r for r in results if member(r)]
        by_opponent = {
            opponent: rate_of(r.verdicts[opponent].outcome for r in chosen if opponent in r.verdicts)
            for opponent in OPPONENTS
            if any(opponent in r.verdicts for r in chosen)
        }
        rates[name] = by_opponent
    models = [m for m in ("student", "base") if any(m in r.answers for r in results)]
    short = [r for r in results if r.exact.get("student") is not None]
    return EvalSummary(
        cases=len(results),
        rates=rates,
        kinds=kinds,
        prompts=prompts,
        rubric={m: mean_or_none(r.rubric.get(m) for r in results) for m in models},
        rouge_l={m: mean_or_none(r.rouge_l.get(m) for r in results) for m in models},
        exact={m: mean_or_none(float(bool(r.exact.get(m))) for r in short) for m in models},
        exact_cases=len(short),
        degenerate={m: sum(r.degenerate.get(m) is not None for r in results) for m in models},
        unjudged={
            o: sum(o not in r.verdicts for r in results)
            for o in OPPONENTS
            if o == "teacher" or "base" in models
        },
    )


def _show(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
