"""What an evaluation found, per (image, question) and in total: plain data, written as ``eval.json``.

Outcomes are the student's: ``win`` means the judge preferred the student's answer in both orders,
``loss`` the opponent's in both, ``tie`` anything else (a tie, or a verdict that flipped with the order,
which is the judge's position bias and not a preference). A degenerate answer loses without a judge call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from vqa_distill.student.judged.cases import EvalCase

Outcome = Literal["win", "tie", "loss"]
Pick = Literal["student", "opponent", "tie"]  # one order's verdict, from the student's side
OPPONENTS = ("teacher", "base")  # whom the student is compared with
MODELS = ("student", "base")  # who answers locally; the teacher's answer is the dataset's reference


@dataclass(frozen=True)
class PairVerdict:
    """The student against one opponent on one case: both orders' picks and the outcome they make.

    ``picks`` is (student shown first, student shown second); an order not asked (a degenerate answer
    decided it) is None. ``reasons`` holds the judge's reasons in the same order, or why no call was made.
    """

    opponent: str
    outcome: Outcome
    picks: tuple[Pick | None, Pick | None]
    reasons: tuple[str, str] = ("", "")

    @property
    def judged(self) -> bool:
        """Whether the judge was asked (False: a degenerate answer decided it for free)."""
        return any(pick is not None for pick in self.picks)


@dataclass(frozen=True)
class CaseResult:
    """One case with every answer, flag, score and verdict.

    ``answers`` has "teacher" (the reference), "student" and, when compared, "base". ``degenerate``,
    ``rouge_l``, ``exact`` and ``rubric`` are keyed by the local models ("student", "base"): ``exact``
    is None where the reference is not short, ``rubric`` None where no rubric was asked or usable.
    """

    case: EvalCase
    answers: dict[str, str]
    degenerate: dict[str, str | None]
    rouge_l: dict[str, float]
    exact: dict[str, bool | None]
    rubric: dict[str, int | None]
    verdicts: dict[str, PairVerdict] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The case as ``eval.json`` holds it."""
        data = asdict(self)
        data["case"] = self.case.to_json()
        return data


@dataclass(frozen=True)
class RateWithCI:
    """A win-or-tie rate over ``n`` outcomes with its 95 % Wilson interval (low, high)."""

    wins: int
    ties: int
    losses: int
    rate: float
    low: float
    high: float

    @property
    def n(self) -> int:
        """How many outcomes the rate is over."""
        return self.wins + self.ties + self.losses

    def describe(self) -> str:
        """``0.67 [0.21, 0.94] (n=3)``."""
        return f"{self.rate:.2f} [{self.low:.2f}, {self.high:.2f}] (n={self.n})"
