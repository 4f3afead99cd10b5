"""The loop's budget: what the teacher has cost so far (from ``usage``), and how many asks the rest allows.

Before a round pays, its units are cut to what the budget still allows at an estimate per unit that
errs high: the most a request has cost so far (before any was paid, a first guess: the dearest image
the model's rule bills within ``max_pixels``, with a full answer) times the most requests a unit can
still make (its question set, each question's answer, each answer's judgement; a group's own count of
questions). So the estimate holds before paying and the actual spend, read back from the ledger, is
what counts after. A request budget is exact: a unit never makes more requests than that bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.endpoint.pricing import estimate_cost, price_of
from vqa_distill.teacher.ledger.records import Ledger, ledger_exists
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_UNUSABLE
from vqa_distill.teacher.params import DEFAULT_MAX_TOKENS, TeacherParams

# Before any usage: the text of a request (the question-set instruction with its schema, or a question,
# and the system prompt), rounded up; the image is billed by the model's own rule.
FIRST_GUESS_TEXT_TOKENS = 600
# The aspect ratios an image within ``max_pixels`` is tried at (a tile rule bills a 8:3 picture 8 tiles,
# a square one 4): phones, cameras, panoramas, scans.
FIRST_GUESS_ASPECTS = (1.0, 4 / 3, 3 / 2, 16 / 9, 2.0, 8 / 3, 3.0, 4.0)
USD_TOLERANCE = 1e-9  # float noise of subtracting costs (prices are rounded to a millionth of a dollar)


@dataclass(frozen=True)
class Spend:
    """What the ledger says was paid: USD (None where a model has no known price), requests, the dearest request."""

    usd: float
    requests: int
    dearest_usd: float
    unpriced: int


def teacher_spend(ledger: Ledger) -> Spend:
    """Sum the paid records (answered or unusable: both were billed) of the teacher's ledger."""
    usd = dearest = 0.0
    requests = unpriced = 0
    for record in ledger.records(STATUS_ANSWERED, STATUS_UNUSABLE):
        requests += 1
        cost = estimate_cost(
            record.model, record.prompt_tokens or 0, record.completion_tokens or 0, batch=record.batch_id is not None
        )
        if cost is None:
            unpriced += 1
            continue
        usd += cost
        dearest = max(dearest, cost)
    return Spend(usd=round(usd, 6), requests=requests, dearest_usd=dearest, unpriced=unpriced)


def spend_in(folders: Iterable[Path]) -> float:
    """The USD paid in the ledgers of ``folders`` (those that have one): the judge's, in an evaluation's folder."""
    total = 0.0
    for folder in folders:
        if ledger_exists(folder):
            with Ledger(folder) as ledger:
                total += teacher_spend(ledger).usd
    return round(total, 6)


def requests_per_unit(params: TeacherParams) -> int:
    """The most requests one image x prompt makes: its question set, an answer per question, a judgement each."""
    questions = params.questions or 1
    return 1 + questions * (2 if params.judge_model else 1)


def first_guess_prompt_tokens(params: TeacherParams) -> int:
    """The prompt tokens of the dearest request the teacher may send: its image at the worst aspect, and text."""
    spec = model_spec(params.model)
    dearest = 0
    for aspect in FIRST_GUESS_ASPECTS:
        width = max(1, math.isqrt(int(params.max_pixels * aspect)))
        height = max(1, params.max_pixels // width)
        dearest = max(dearest, spec.image_tokens(width, height, params.detail))
    return dearest + FIRST_GUESS_TEXT_TOKENS


def request_estimate(params: TeacherParams, spend: Spend) -> float | None:
    """The cost to plan one request at: the dearest so far, or a first guess from list prices (None: unpriced)."""
    price = price_of(params.model)
    if price is None:
        return spend.dearest_usd or None
    max_tokens = params.max_tokens or DEFAULT_MAX_TOKENS
    guess = (first_guess_prompt_tokens(params) * price[0] + max_tokens * price[1]) / 1_000_000
    return max(spend.dearest_usd, guess) if spend.requests == 0 else spend.dearest_usd


@dataclass
class Allowance:
    """What a budget still allows a round (None: no limit), booked unit by unit as the round's asks are cut."""

    requests: int | None
    usd: float | None
    usd_per_request: float | None

    def take(self, requests: int) -> bool:
        """Book ``requests`` more requests if both budgets hold them; False (nothing booked) if not."""
        if self.requests is not None and requests > self.requests:
            return False
        if self.usd is not None:
            cost = (self.usd_per_request or 0.0) * requests
            if not self.usd_per_request or cost > self.usd + USD_TOLERANCE:
                return False
            self.usd -= cost
        if self.requests is not None:
            self.requests -= requests
        return True


@dataclass(frozen=True)
class Budget:
    """The loop's limits (None: none); ``affordable`` turns what is left into a number of units."""

    usd: float | None
    requests: int | None

    def affordable(self, params: TeacherParams, spend: Spend) -> int | None:
        """How many more units fit in both budgets (None: unlimited)."""
        per_unit = requests_per_unit(params)
        limits: list[int] = []
        if self.requests is not None:
            limits.append(max(0, self.requests - spend.requests) // per_unit)
        if self.usd is not None:
            estimate = request_estimate(params, spend)
            left = max(0.0, self.usd - spend.usd)
            limits.append(int(left // (estimate * per_unit)) if estimate else 0)
        return min(limits) if limits else None

    def allowance(self, params: TeacherParams, spend: Spend) -> Allowance:
        """What is left after ``spend``, with the cost to plan each request at."""
        return Allowance(
            requests=None if self.requests is None else max(0, self.requests - spend.requests),
            usd=None if self.usd is None else max(0.0, self.usd - spend.usd),
            usd_per_request=request_estimate(params, spend) if self.usd is not None else None,
        )

    def describe(self, spend: Spend) -> str:
        """``$0.0123 of $0.05, 42 of 100 requests``."""
        parts = [f"${spend.usd:.4f}" + (f" of ${self.usd:g}" if self.usd is not None else "")]
        parts.append(f"{spend.requests}" + (f" of {self.requests}" if self.requests is not None else "") + " requests")
        return ", ".join(parts)
