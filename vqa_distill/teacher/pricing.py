"""List prices of known teacher models, to estimate what a run cost (USD per million tokens)."""

from __future__ import annotations

# (input, output) USD per 1M tokens, OpenAI list prices for standard processing.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "teacher-offline": (0.0, 0.0),
}


def price_of(model: str) -> tuple[float, float] | None:
    """Return the (input, output) price of a model, matching dated snapshots to their family."""
    if model in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model]
    family = max((name for name in PRICES_PER_MILLION if model.startswith(name + "-")), key=len, default=None)
    return PRICES_PER_MILLION[family] if family else None


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Return the estimated cost in USD, or None for a model without a known price."""
    price = price_of(model)
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 6)
