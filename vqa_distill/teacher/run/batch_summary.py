"""The Batch API part of a run summary: what was submitted or collected, what is still in flight, what it cost."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from vqa_distill.teacher.endpoint.pricing import estimate_cost

BYTES_PER_KIB = 1024


class BatchSummary(BaseModel):
    """What one submit or collect did with the Batch API (shown under the run summary)."""

    mode: Literal["submit", "collect"]
    batch_ids: list[str] = []  # submitted now, or collected now
    lines: int = 0  # lines submitted now, or results read now
    lines_per_file: int | None = None  # lines of the average size that fit in one input file
    mean_line_kib: float | None = None  # base64 images make a line about 4/3 of its JPEG
    adopted: list[str] = []  # batches of an interrupted submit, found again by their metadata
    released: int = 0  # keys of an interrupted submit that created no batch, given back
    in_flight: int = 0  # keys in batches not collected yet, after this run
    open_batches: int = 0  # batches not finished yet, after this run
    not_run: int = 0  # lines of expired or cancelled batches never answered: asked again later
    duplicates: int = 0  # lines also answered online (or by another batch): recorded once
    online_cost_usd: float | None = None  # the same tokens at the online price
    saving_usd: float | None = None

    def table_rows(self) -> list[tuple[str, object]]:
        """Return metric/value pairs for the run summary table."""
        rows: list[tuple[str, object]] = []
        if self.mode == "submit":
            rows += [
                ("batch lines submitted now", self.lines),
                ("batches created now", ", ".join(self.batch_ids) or "none"),
                ("lines per input file (average size)", self.lines_per_file or "n/a"),
                ("average line size (KiB)", self.mean_line_kib if self.mean_line_kib is not None else "n/a"),
            ]
        else:
            rows += [
                ("batches collected now", ", ".join(self.batch_ids) or "none"),
                ("batch results read now", self.lines),
                ("lines not run (expired/cancelled): asked again", self.not_run),
                ("answered twice (online and batch), recorded once", self.duplicates),
            ]
            if self.online_cost_usd is not None:
                rows += [
                    ("online price of the same tokens", f"${self.online_cost_usd:.4f}"),
                    ("saved by the Batch API", f"${self.saving_usd or 0:.4f}"),
                ]
        if self.adopted or self.released:
            rows.append(
                (
                    "interrupted submit: batches found again / keys given back",
                    f"{', '.join(self.adopted) or 'none'} / {self.released}",
                )
            )
        rows += [
            ("lines in flight (batches not collected)", self.in_flight),
            ("batches not finished", self.open_batches),
        ]
        return rows


def batch_costs(
    model: str, prompt_tokens: int, completion_tokens: int
) -> tuple[float | None, float | None, float | None]:
    """Return (batch cost, online cost, saving) in USD of the tokens, or Nones for a model without a price."""
    batch = estimate_cost(model, prompt_tokens, completion_tokens, batch=True)
    online = estimate_cost(model, prompt_tokens, completion_tokens)
    if batch is None or online is None:
        return None, None, None
    return batch, online, round(online - batch, 6)


def mean_kib(total_bytes: int, lines: int) -> float | None:
    """Return the average line size in KiB, or None without lines."""
    return round(total_bytes / lines / BYTES_PER_KIB, 1) if lines else None
