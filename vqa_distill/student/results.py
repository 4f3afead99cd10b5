"""Read what an ms-swift run left behind: ``logging.jsonl`` holds every logged step and, last, the summary.

The summary line names ``last_model_checkpoint``; it is the only place ms-swift records which
checkpoint a run ended on, so the flow's return value comes from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqa_distill.errors import FatalRunError


@dataclass(frozen=True)
class TrainSummary:
    """One finished run: where its checkpoint is and how training went."""

    run_dir: str
    checkpoint: str
    global_step: int
    train_loss: float | None
    train_runtime_s: float | None
    train_samples_per_second: float | None
    eval_loss: float | None
    peak_memory_gib: float | None
    loss_points: list[tuple[int, float]] = field(default_factory=list)
    eval_points: list[tuple[int, float]] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """Flat name -> value, for the metrics table artifact."""
        return {
            "checkpoint": self.checkpoint,
            "global_step": self.global_step,
            "train_loss": self.train_loss,
            "eval_loss": self.eval_loss,
            "train_runtime_s": self.train_runtime_s,
            "train_samples_per_second": self.train_samples_per_second,
            "peak_memory_gib": self.peak_memory_gib,
        }


def read_summary(run_dir: Path) -> TrainSummary:
    """Parse ``run_dir/logging.jsonl``; raises FatalRunError when the run left no checkpoint."""
    records = _records(run_dir / "logging.jsonl")
    final = next((r for r in reversed(records) if "last_model_checkpoint" in r), None)
    if final is None or not final.get("last_model_checkpoint"):
        raise FatalRunError(f"ms-swift finished without recording a checkpoint in {run_dir / 'logging.jsonl'}")
    steps = [r for r in records if "global_step/max_steps" in r]
    history = final.get("log_history") or []
    totals: dict[str, Any] = next((h for h in reversed(history) if "train_runtime" in h), {})
    eval_points = [(int(h["step"]), float(h["eval_loss"])) for h in history if "eval_loss" in h and "step" in h]
    # Max reserved CUDA memory, in GiB: the summary's "memory", else the step lines' (0 on the CPU).
    memories = [m for m in [_gib(final.get("memory")), *(_gib(r.get("memory(GiB)")) for r in steps)] if m]
    return TrainSummary(
        run_dir=str(run_dir),
        checkpoint=str(final["last_model_checkpoint"]),
        global_step=int(final.get("global_step") or 0),
        train_loss=_float(totals.get("train_loss")),
        train_runtime_s=_float(totals.get("train_runtime")),
        train_samples_per_second=_float(totals.get("train_samples_per_second")),
        eval_loss=eval_points[-1][1] if eval_points else None,
        peak_memory_gib=max(memories) if memories else None,
        loss_points=[(int(h["step"]), float(h["loss"])) for h in history if "loss" in h and "step" in h],
        eval_points=eval_points,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FatalRunError(f"ms-swift wrote no {path}") from None
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def _float(value: Any) -> float | None:
    """A float, or None for missing values."""
    return None if value is None else float(value)


def _gib(value: Any) -> float | None:
    """A memory figure as ms-swift logs it (a number, a string, or absent)."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
