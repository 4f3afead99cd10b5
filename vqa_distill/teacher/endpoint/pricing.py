"""What a run cost, from the model table's list prices (USD per 1M tokens; Batch API at half price)."""

from __future__ import annotations

from vqa_distill.teacher.endpoint.models import model_spec


def price_of(model: str, *, batch: bool = False) -> tuple[float, float] | None:
    """Return the (input, output) USD price per 1M tokens of a model, dated snapshots included, or None."""
    price = model_spec(model).price
    if price is None:
        return None
    price = price.batch() if batch else price
    return price.input, price.output


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float | None:
    """Return the estimated cost in USD, or None for a model without a known price."""
    price = model_spec(model).price
    if price is None:
        return None
    return (price.batch() if batch else price).cost(prompt_tokens, completion_tokens)
