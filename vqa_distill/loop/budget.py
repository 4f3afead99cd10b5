"""The loop's budget: what the teacher has cost so far (from ``usage``), and how many asks the rest allows.

Before a round pays, its units are cut to what the budget still allows at an estimate per unit that
errs high: the most a request has cost so far (a first guess before any was paid) times the most
requests a unit can make (its question set, each question's answer, each answer's judgement). So the
estimate holds before paying and the actual spend, read back from the ledger, is what counts after.
A request budget is exact: a unit never makes more requests than that bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqa_distill.teacher.endpoint.pricing import estimate_cost, price_of
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_UNUSABLE
from vqa_distill.teacher.params import DEFAULT_MAX_TOKENS, TeacherParams

FIRST_GUESS_PROMPT_TOKENS = 3_000  # a large image (1,500+ tokens for every family) plus the prompt, before any usage


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


def requests_per_unit(params: TeacherParams) -> int:
    """The most requests one image x prompt makes: its question set, an answer per question, a judgement each."""
    questions = params.questions or 1
    return 1 + questions * (2 if params.judge_model else 1)


def request_estimate(params: TeacherParams, spend: Spend) -> float | None:
    """The cost to plan one request at: the dearest so far, or a first guess from list prices (None: unpriced)."""
    price = price_of(params.model)
    if price is None:
        return spend.dearest_usd or None
    max_tokens = params.max_tokens or DEFAULT_MAX_TOKENS
    guess = (FIRST_GUESS_PROMPT_TOKENS * price[0] + max_tokens * price[1]) / 1_000_000
    return max(spend.dearest_usd, guess) if spend.requests == 0 else spend.dearest_usd


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

    def describe(self, spend: Spend) -> str:
        """``$0.0123 of $0.05, 42 of 100 requests``."""
        parts = [f"${spend.usd:.4f}" + (f" of ${self.usd:g}" if self.usd is not None else "")]
        parts.append(f"{spend.requests}" + (f" of {self.requests}" if self.requests is not None else "") + " requests")
        return ", ".join(parts)
