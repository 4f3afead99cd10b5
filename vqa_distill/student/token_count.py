"""Count a row's tokens with the model's own processor and ms-swift template, images included.

The preflight needs the real count: ms-swift deletes a row over ``--max_length`` silently, and an
image's share depends on the processor's pixel budget. No weights are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from vqa_distill.errors import ModelNotFoundError
from vqa_distill.student.model_resolve import ResolvedModel


class TokenCount(NamedTuple):
    """A row's tokens: all of them, and how many of those stand for its images."""

    total: int
    image: int = 0


# A counter takes a row (images already decoded to PIL) and returns its token count (a plain int: no
# image share known, so no --max_pixels can be suggested for it).
TokenCounter = Callable[[dict[str, Any]], TokenCount | int]


def load_token_counter(model: ResolvedModel, *, system: str, max_pixels: int | None) -> TokenCounter:
    """Build a counter from the model's own processor and ms-swift template (no weights are loaded)."""
    try:
        from swift import get_processor, get_template

        processor = get_processor(model.model, model_type=model.model_type)
        template = get_template(
            processor,
            default_system=system,
            template_type=model.template,
            max_length=None,
            truncation_strategy="raise",
            max_pixels=max_pixels,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot load the processor of {model.model!r}: {exc}") from exc
    template.max_length = None  # count, do not truncate or raise
    template.set_mode("train")
    image_token_id = getattr(template, "image_token_id", None)

    def count(row: dict[str, Any]) -> TokenCount:
        input_ids = template.encode(row)["input_ids"]
        image = sum(1 for token in input_ids if token == image_token_id) if image_token_id is not None else 0
        return TokenCount(len(input_ids), image)

    return count
