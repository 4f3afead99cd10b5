"""The loop's memory on disk (``loop.json``): the split and what every finished round did.

A round is written once it is finished (trained and judged); a loop killed mid-round starts that
round again, and its teacher requests are answered from the ledger, so nothing is paid twice.
Each round's files stay under ``rounds/r<N>/``: the asked groups, the dataset version, the
checkpoints and the evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from vqa_distill.atomic import atomic_write_text
from vqa_distill.loop.split import ImageSplit

STATE_FILE = "loop.json"
ROUNDS_DIR = "rounds"
TEACHER_DIR = "teacher"  # the teacher's ledger, shared by every round
HOLDOUT_FILE = "holdout.jsonl"  # the fixed held-out rows, judged every round


class RoundRecord(BaseModel):
    """One finished round: what it asked and added, what it cost, how the student did after it."""

    round: int
    spend_usd: float = Field(description="The teacher's spend so far, all rounds, at the end of this round.")
    requests: int = Field(description="The teacher's paid requests so far, all rounds.")
    judge_spend_usd: float = 0.0
    rows_added: dict[str, int] = Field(default_factory=dict, description="Rows this round added, by reason.")
    asked_images: list[str] = Field(default_factory=list, description="Images (sha256) this round asked about.")
    left_out_units: int = Field(default=0, description="Units the budget left out of this round.")
    targeted: list[str] = Field(default_factory=list, description="Targeted units asked (image and prompt).")
    train_rows: int = 0
    checkpoint: str | None = None
    dataset: str | None = None
    win_or_tie: float | None = None
    win_or_tie_low: float | None = None
    win_or_tie_high: float | None = None
    rouge_l: float | None = None
    degenerate: int = 0
    cases: int = 0
    eval_html: str | None = None
    stop_reason: str | None = None


class LoopState(BaseModel):
    """The split and the finished rounds."""

    split: ImageSplit
    rounds: list[RoundRecord] = Field(default_factory=list)

    @property
    def next_round(self) -> int:
        """The round to run next: the one after the last finished."""
        return len(self.rounds)

    def targeted_before(self) -> set[str]:
        """Every targeted unit an earlier round asked: asking one again would add nothing."""
        return {mark for record in self.rounds for mark in record.targeted}

    def asked_images(self) -> set[str]:
        """Every image some round asked about (the pool's others are still unlabelled)."""
        return {sha for record in self.rounds for sha in record.asked_images}

    @property
    def last(self) -> RoundRecord | None:
        """The last finished round, None before round 0 is done."""
        return self.rounds[-1] if self.rounds else None


def round_dir(out: Path, number: int) -> Path:
    """``rounds/r<N>``: every file one round writes."""
    return out / ROUNDS_DIR / f"r{number}"


def load_state(out: Path) -> LoopState | None:
    """The state of a loop started in ``out`` before, or None."""
    path = out / STATE_FILE
    if not path.is_file():
        return None
    return LoopState.model_validate(json.loads(path.read_text(encoding="utf-8")))


def save_state(out: Path, state: LoopState) -> None:
    """Write the state atomically: a kill leaves the previous state or this one, never half of either."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STATE_FILE, state.model_dump_json(indent=2))
