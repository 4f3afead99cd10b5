"""Token accounting shared by the teacher client (estimates before a call) and the offline teacher server.

The server reports ``usage.prompt_tokens`` with exactly these functions, so the client's estimate for
its tokens-per-minute limiter equals what the server bills. Image tokens follow OpenAI's published
vision formula; text tokens are a cheap ~4-characters-per-token estimate (no tokenizer dependency).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

DETAIL_LOW = "low"
DETAIL_HIGH = "high"
DETAIL_AUTO = "auto"  # billed as high: we cannot know which the API would pick, so we over-estimate
DETAILS = (DETAIL_LOW, DETAIL_HIGH, DETAIL_AUTO)

LOW_DETAIL_IMAGE_TOKENS = 85  # a low-detail image costs this flat amount, whatever its size
BASE_IMAGE_TOKENS = 85  # the fixed part of a high-detail image
TOKENS_PER_TILE = 170  # each 512x512 tile of the scaled high-detail image
TILE_SIDE_PX = 512
MAX_IMAGE_SIDE_BILLED = 2048  # a high-detail image is first scaled down to fit a 2048x2048 square
SHORTEST_SIDE_BILLED = 768  # ...then scaled down so that its shortest side is at most 768 px
CHARS_PER_TOKEN = 4  # rough average for English text with OpenAI's tokenizers


def billed_image_size(width: int, height: int) -> tuple[int, int]:
    """Return the size a high-detail image is scaled to before tiling (never upscaled)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    w, h = float(width), float(height)
    fit = min(1.0, MAX_IMAGE_SIDE_BILLED / max(w, h))
    w, h = w * fit, h * fit
    shrink = min(1.0, SHORTEST_SIDE_BILLED / min(w, h))
    # Round to whole pixels so float noise (1024.0000001) cannot add a tile.
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def image_tokens(width: int, height: int, detail: str = DETAIL_HIGH) -> int:
    """Return the prompt tokens OpenAI bills for one image of ``width`` x ``height`` at ``detail``."""
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {detail!r}")
    if detail == DETAIL_LOW:
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return LOW_DETAIL_IMAGE_TOKENS
    w, h = billed_image_size(width, height)
    tiles = math.ceil(w / TILE_SIDE_PX) * math.ceil(h / TILE_SIDE_PX)
    return BASE_IMAGE_TOKENS + TOKENS_PER_TILE * tiles


def text_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: ceil(len / 4), so any non-empty text counts at least 1."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(texts: Iterable[str], images: Iterable[tuple[int, int, str]] = ()) -> int:
    """Return the prompt tokens of a request: every text part (system included) plus every image.

    ``images`` holds ``(width, height, detail)`` of each image at its decoded size.
    """
    return sum(text_tokens(t) for t in texts) + sum(image_tokens(w, h, d) for w, h, d in images)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Cut ``text`` so that ``text_tokens`` of the result is at most ``max_tokens``."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    return text[: max_tokens * CHARS_PER_TOKEN]
