"""Text token estimate used by the client before a call: about 4 characters per token.

A cheap estimate with no tokenizer dependency; ``usage`` in the answer corrects it after the call.
Image tokens depend on the model and live in ``vqa_distill.teacher.endpoint.models``.
"""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4  # rough average for English text with OpenAI's tokenizers


def text_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: ceil(len / 4), so any non-empty text counts at least 1."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)
