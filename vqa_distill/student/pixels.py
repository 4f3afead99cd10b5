"""The student's pixel budget: how many pixels an image may keep so that its tokens fit ``--max_length``.

Qwen-VL models turn an image into one token per ``factor × factor`` pixels: 14-px patches merged 2×2 for
Qwen2-VL and Qwen2.5-VL (28), 16-px patches merged 2×2 for Qwen3-VL (32). Without a budget, ms-swift
keeps up to 16,384 tokens an image, so a 12 MP photo becomes ~15,000 tokens and the row is deleted
for being longer than ``--max_length``. Pure functions only: which budget, and which would fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# qwen_vl_utils' IMAGE_MIN_TOKEN_NUM: ms-swift resizes every image to at least this many tokens.
MIN_IMAGE_TOKENS = 4
IMAGE_SHARE = 2  # a derived budget gives one image at most 1/IMAGE_SHARE of max_length


@dataclass(frozen=True)
class PixelRule:
    """How one model family turns pixels into tokens: one token per ``factor``² pixels, at least ``min_pixels``."""

    factor: int
    min_pixels: int

    @property
    def pixels_per_token(self) -> int:
        """Pixels behind one image token (factor²)."""
        return self.factor * self.factor

    @property
    def min_tokens(self) -> int:
        """The fewest tokens an image becomes (min_pixels rounded up to whole tokens)."""
        return max(1, -(-self.min_pixels // self.pixels_per_token))

    def pixels_for(self, tokens: int) -> int:
        """The max_pixels that keeps an image at ``tokens``: a multiple of factor², never below min_pixels."""
        return max(tokens, self.min_tokens) * self.pixels_per_token


# Token side in pixels (patch size × spatial merge) per ms-swift model_type.
FACTORS: dict[str, int] = {"qwen2_vl": 28, "qwen2_5_vl": 28, "qwen3_vl": 32, "qwen3_vl_moe": 32}


def pixel_rule(model_type: str, *, min_pixels: int | None = None) -> PixelRule | None:
    """The rule of a supported model type (None for others); ``min_pixels`` overrides the processor's floor."""
    factor = FACTORS.get(model_type)
    if factor is None:
        return None
    return PixelRule(factor, min_pixels if min_pixels is not None else MIN_IMAGE_TOKENS * factor * factor)


def default_max_pixels(model_type: str, max_length: int, *, min_pixels: int | None = None) -> int | None:
    """The max_pixels that keeps one image within about half of ``max_length`` tokens; None for a model
    type without a known rule (ms-swift's own default then applies).

    For Qwen2/2.5-VL: max_length 2048 -> 1024 tokens -> 1024 × 28² = 802,816 pixels.
    """
    rule = pixel_rule(model_type, min_pixels=min_pixels)
    if rule is None:
        return None
    return rule.pixels_for(max_length // IMAGE_SHARE)


def image_tokens_at_most(width: int, height: int, max_pixels: int, rule: PixelRule) -> int:
    """An upper bound on the tokens of a ``width × height`` image under ``max_pixels``, as ms-swift resizes it.

    ms-swift scales the image down to at most ``max_pixels`` (keeping its aspect ratio), then rounds
    each side to the nearest multiple of the factor, which can add up to one token row and column.
    """
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    tokens = ((width + 1) // rule.factor + 1) * ((height + 1) // rule.factor + 1)
    return max(tokens, rule.min_tokens)


def fitting_max_pixels(image_sizes: Sequence[tuple[int, int]], budget_tokens: int, rule: PixelRule) -> int | None:
    """The largest max_pixels (a multiple of factor²) under which these images take at most ``budget_tokens``
    together; None when even the smallest images would not fit."""
    if not image_sizes:
        return None

    def fits(tokens_each: int) -> bool:
        pixels = rule.pixels_for(tokens_each)
        return sum(image_tokens_at_most(w, h, pixels, rule) for w, h in image_sizes) <= budget_tokens

    low, high = rule.min_tokens, budget_tokens // len(image_sizes)
    if high < low or not fits(low):
        return None
    while low < high:  # the bound grows with max_pixels: the largest fitting value by bisection
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return rule.pixels_for(low)


Source = Literal["given", "derived", "unset"]


@dataclass(frozen=True)
class PixelBudget:
    """The max_pixels a run uses, where it came from, and the rule to suggest another with."""

    max_pixels: int | None
    source: Source
    max_length: int
    rule: PixelRule | None

    def describe(self) -> str:
        """One line for the log, the metrics table and a refusal: the value and why it is that value."""
        if self.max_pixels is None:
            return "max_pixels not set (no pixel rule for this model type: ms-swift's default applies)"
        if self.source == "given":
            return f"max_pixels {self.max_pixels} (given)"
        tokens = self.max_pixels // self.rule.pixels_per_token if self.rule else 0
        return f"max_pixels {self.max_pixels} (chosen from max_length {self.max_length}: an image ≤ ~{tokens} tokens)"


def choose_pixel_budget(
    max_pixels: int | None, model_type: str, max_length: int, *, min_pixels: int | None = None
) -> PixelBudget:
    """A given ``max_pixels`` as it is; otherwise the default derived from ``max_length`` for ``model_type``."""
    rule = pixel_rule(model_type, min_pixels=min_pixels)
    if max_pixels is not None:
        return PixelBudget(max_pixels, "given", max_length, rule)
    derived = default_max_pixels(model_type, max_length, min_pixels=min_pixels)
    return PixelBudget(derived, "derived" if derived is not None else "unset", max_length, rule)
