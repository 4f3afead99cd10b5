"""Does the merged model answer as the adapter does? A few rows, greedy, both ways, compared.

ms-swift's users report merged models whose answers differ from the adapter's (a merge in another
precision than training, a base model that changed under its hub id, a processor or generation
config not carried over). No score is needed to notice: greedy answers to a handful of rows are the
same when the merge is faithful, so any difference is shown, row by row, both ways. The inference
is ``infer_worker``'s (one child process, both models, the training run's ``max_pixels``); this
module only picks the rows, writes the spec and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.student.evaluate import EvalRow, eval_rows_from_files
from vqa_distill.student.infer_worker import InferModel, InferSpec
from vqa_distill.student.metrics import degenerate_reason
from vqa_distill.student.model_resolve import ResolvedModel

MERGE_CHECK_DIR = "merge-check"  # in the run directory: rows, spec, predictions, infer.log
ADAPTER = "adapter"
MERGED = "merged"
SHOWN_CHARS = 120  # answers are cut to this length in the warning


def pick_rows(files: Iterable[Path], *, system: str, limit: int) -> list[EvalRow]:
    """The first ``limit`` answerable rows of ``files`` (validation rows first, as the caller orders them)."""
    return eval_rows_from_files(files, system=system, limit=limit) if limit > 0 else []


def merge_check_spec(
    rows: Path,
    out: Path,
    *,
    base: ResolvedModel,
    checkpoint: str,
    merged: str,
    torch_dtype: str,
    max_new_tokens: int,
    max_pixels: int | None,
) -> InferSpec:
    """One worker run, two models: base + adapter (as trained), then the merged directory."""
    return InferSpec(
        rows=str(rows),
        out=str(out),
        models=[
            InferModel(ADAPTER, base.model, base.model_type, base.template, [checkpoint]),
            InferModel(MERGED, merged, base.model_type, base.template),
        ],
        torch_dtype=torch_dtype,
        max_new_tokens=max_new_tokens,
        max_pixels=max_pixels,
    )


@dataclass(frozen=True)
class RowDiff:
    """One row whose answers differ: its 1-based number among the checked rows, its images, both answers."""

    row: int
    images: list[str]
    adapter: str
    merged: str

    def describe(self) -> str:
        """``row 2 (tile.png): adapter '...' / merged '...'``, answers cut to SHOWN_CHARS."""
        images = ", ".join(Path(image).name for image in self.images) or "no image"
        return f"row {self.row} ({images}): adapter {_shown(self.adapter)} / merged {_shown(self.merged)}"


@dataclass(frozen=True)
class MergeCheck:
    """The outcome: how many rows were answered by both, and those answered differently."""

    rows: int
    differing: list[RowDiff]
    degenerate: int = 0  # rows the adapter answered with no answer at all (newlines, one token repeated)

    @property
    def ok(self) -> bool:
        """True when the merged model answers every row as the adapter does."""
        return not self.differing

    def verdict(self) -> str:
        """The metrics table's cell: ``3/3 identical`` or ``1/3 differ``."""
        if self.ok:
            return f"{self.rows}/{self.rows} identical"
        return f"{len(self.differing)}/{self.rows} differ"

    def message(self) -> str:
        """The log line: an info line when all agree, else a warning naming each differing row."""
        if self.ok:
            line = f"merge check: merged model answers {self.rows} of {self.rows} rows as the adapter does"
            if self.degenerate:  # two models that both answer newlines agree without proving much
                line += f" ({self.degenerate} of the answers degenerate: alike says little there)"
            return line
        head = (
            f"merge check: merged model answers {len(self.differing)} of {self.rows} rows differently from "
            "the adapter (greedy, same rows, same max_pixels); read both before using the merged model"
        )
        return "\n".join([head, *(f"  {diff.describe()}" for diff in self.differing)])


def compare(rows: Sequence[EvalRow], adapter: Sequence[str], merged: Sequence[str]) -> MergeCheck:
    """Compare the two models' answers row by row; exact text, since greedy decoding of equal weights is exact."""
    if not len(rows) == len(adapter) == len(merged):
        raise ValueError(f"{len(rows)} rows but {len(adapter)} adapter and {len(merged)} merged answers")
    differing = [
        RowDiff(number, row.images, first, second)
        for number, (row, first, second) in enumerate(zip(rows, adapter, merged, strict=True), start=1)
        if first != second
    ]
    return MergeCheck(len(rows), differing, sum(degenerate_reason(answer) is not None for answer in adapter))


def _shown(text: str) -> str:
    """An answer quoted on one line (``repr`` shows a newline as ``\\n``), cut to SHOWN_CHARS."""
    return repr(text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…")
