"""The progress figures in words: one line for the CLI's bar and the progress artifact, a table for the UI.

Both displays call these functions, so the terminal and the Prefect UI show the same spend and ETA.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqa_distill.progress.tally import Snapshot

FOUR_DECIMALS_BELOW_USD = 1.0  # a request costs fractions of a cent: small spend shows four decimals
SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class Limits:
    """The endpoint's limits the run is held to: requests and tokens per minute."""

    rpm: int
    tpm: int


def usd(value: float | None) -> str:
    """Return dollars for people: ``$0.0123`` below a dollar, ``$1,234.56`` above; ``n/a`` when unknown."""
    if value is None:
        return "n/a"
    return f"${value:.4f}" if value < FOUR_DECIMALS_BELOW_USD else f"${value:,.2f}"


def duration(seconds: float | None) -> str:
    """Return a duration for people: ``45 s``, ``12 min 5 s``, ``2 h 05 min``; ``estimating`` when unknown."""
    if seconds is None:
        return "estimating"
    whole = round(seconds)
    if whole < SECONDS_PER_MINUTE:
        return f"{whole} s"
    if whole < SECONDS_PER_HOUR:
        minutes, rest = divmod(whole, SECONDS_PER_MINUTE)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, SECONDS_PER_HOUR)
    return f"{hours} h {rest // SECONDS_PER_MINUTE:02d} min"


def projection(snapshot: Snapshot, *, finished: bool = False) -> str:
    """Return the projected total (the spend, once finished), or why there is none yet."""
    if snapshot.spend_usd is None:
        return "n/a (no price for the model)"
    if finished:
        return usd(snapshot.spend_usd)
    if snapshot.projected_usd is None:
        return "after the first paid answer"
    return usd(snapshot.projected_usd)


def progress_line(snapshot: Snapshot, *, finished: bool = False) -> str:
    """Return spend, projected total and ETA on one line (the CLI's bar; the progress artifact's description)."""
    eta = "done" if finished or (snapshot.total and not snapshot.left) else duration(snapshot.eta_s)
    return f"spend {usd(snapshot.spend_usd)} of ~{projection(snapshot, finished=finished)} · ETA {eta}"


def done_line(snapshot: Snapshot, unit: str) -> str:
    """Return ``1,234 of 10,000 requests (12.3%)``; no share while the total is not known (or nothing to do)."""
    counted = f"{snapshot.done:,} of {snapshot.total:,} {unit}"
    return f"{counted} ({snapshot.fraction:.1%})" if snapshot.total else counted


def _per_minute(value: float, limit: int | None) -> str:
    shown = f"{value:,.0f}"
    return f"{shown} of {limit:,} allowed" if limit else shown


def progress_markdown(
    snapshot: Snapshot, *, title: str, unit: str, state: str, limits: Limits | None, every_s: float
) -> str:
    """Return the live cost/ETA table: counts, spend and projection, rates against the limits, ETA."""
    finished = state == "finished"
    eta = "done" if finished else duration(snapshot.eta_s)
    rows = [
        ("answered now (paid)", f"{snapshot.answered:,}"),
        ("cached (no call, no cost)", f"{snapshot.cached:,}"),
        ("failed", f"{snapshot.failed:,}"),
        ("spend so far", usd(snapshot.spend_usd)),
        ("projected total", projection(snapshot, finished=finished)),
        ("requests per minute", _per_minute(snapshot.requests_per_min, limits.rpm if limits else None)),
        ("tokens per minute", _per_minute(snapshot.tokens_per_min, limits.tpm if limits else None)),
        ("tokens so far (prompt + completion)", f"{snapshot.prompt_tokens:,} + {snapshot.completion_tokens:,}"),
        ("ETA", eta),
        ("elapsed", duration(snapshot.elapsed_s)),
    ]
    return "\n".join(
        [
            f"### {title}: {state}, {done_line(snapshot, unit)}",
            "",
            "| figure | value |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
            f"Rates and ETA cover the last minute. Projected total: the spend so far plus, for the {unit} left, "
            f"the mean cost of those paid so far (USD, list prices). Updated every {every_s:.0f} s while the run goes.",
        ]
    )
