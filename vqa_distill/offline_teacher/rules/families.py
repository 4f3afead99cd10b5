"""Model names reduced to their family, so a dated snapshot follows the rules of the model it pins."""

from __future__ import annotations

import re

SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # e.g. gpt-4o-mini-2024-07-18 -> gpt-4o-mini

REASONING_FAMILIES = frozenset(
    {"o1", "o1-mini", "o1-pro", "o3", "o3-mini", "o3-pro", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano"}
)


def model_family(model: str) -> str:
    """Return ``model`` lower-cased without a dated snapshot suffix (``-YYYY-MM-DD``)."""
    return SNAPSHOT_SUFFIX.sub("", model.strip().lower())


def is_reasoning(model: str) -> bool:
    """Return whether ``model`` is a reasoning model (o-series, gpt-5 but not gpt-5-chat-latest)."""
    return model_family(model) in REASONING_FAMILIES
