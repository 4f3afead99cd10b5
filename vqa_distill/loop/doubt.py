"""Images the student doubts: it answers the unlabelled pool itself (no teacher cost) and the least sure go next.

Sureness is the mean log-probability of the tokens of its greedy answer to the user's prompt: low
when the student spreads its bets, as on pictures unlike what it was trained on. An answer that is
degenerate (empty, a loop) counts as the least sure of all: the student has nothing to say there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.student.metrics import degenerate_reason

REASON_DOUBT = "doubt"
LEAST_SURE = float("-inf")


@dataclass(frozen=True)
class Doubt:
    """One pool image, the student's answer and how sure it was of it (mean token log-probability)."""

    sha256: str
    answer: str
    sureness: float


def read_doubts(answers_path: Path, shas: Sequence[str]) -> list[Doubt]:
    """Read the inference worker's lines (``index``, ``response``, ``logprob``) for ``shas``, least sure first."""
    doubts = []
    for line in answers_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        answer = str(record.get("response") or "")
        logprob = record.get("logprob")
        sure = LEAST_SURE if logprob is None or degenerate_reason(answer) else float(logprob)
        doubts.append(Doubt(shas[int(record["index"])], answer, sure))
    return sorted(doubts, key=lambda d: (d.sureness, d.sha256))


def most_doubted(doubts: Sequence[Doubt], count: int) -> list[str]:
    """The ``count`` images the student is least sure about (one entry per image)."""
    chosen: list[str] = []
    for doubt in doubts:
        if doubt.sha256 not in chosen:
            chosen.append(doubt.sha256)
        if len(chosen) >= count:
            break
    return chosen
