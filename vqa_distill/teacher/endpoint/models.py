"""What the client knows of each teacher model family: image tokens, accepted parameters and prices.

Every figure comes from OpenAI's published pages:
- image tokens: the vision guide, "Calculating costs"
  (https://platform.openai.com/docs/guides/images-vision#calculating-costs);
- parameters: the reasoning guide (https://platform.openai.com/docs/guides/reasoning): reasoning
  models take ``max_completion_tokens`` (not ``max_tokens``), refuse ``temperature``, and take
  ``reasoning_effort``; ``minimal`` exists for gpt-5 models only;
- prices: the pricing page (https://openai.com/api/pricing/), USD per 1M tokens, standard tier;
  the Batch API bills half of them.

A model name matches its family when it equals it or continues it after a dash, so dated snapshots
(``gpt-4o-mini-2024-07-18``) follow their family; the longest family wins, so gpt-4o-mini is never
gpt-4o. A name the table does not know gets the most expensive image rule of all (``CONSERVATIVE_RULE``),
so a rate limiter never lets too much through (``usage`` corrects each estimate after the call), chat
parameters and no price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Detail = Literal["auto", "low", "high"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]

# Tile scheme (vision guide): a high-detail image is scaled down to fit a 2048x2048 square, then
# down again so its shortest side is at most 768 px (never up), and billed per 512-px tile.
TILE_SIDE_PX = 512
MAX_TILED_SIDE_PX = 2048
SHORTEST_TILED_SIDE_PX = 768

# Patch scheme (vision guide): 32x32-px patches; an image needing more than 1536 is shrunk to fit.
PATCH_SIDE_PX = 32
MAX_PATCHES = 1536

ROUNDING_DIGITS = 9  # float noise (33.000000001 patches) must not add a patch or a pixel

OUTPUT_CAP_CHAT = "max_tokens"
OUTPUT_CAP_REASONING = "max_completion_tokens"
EFFORTS_O_SERIES: tuple[ReasoningEffort, ...] = ("low", "medium", "high")
EFFORTS_GPT_5: tuple[ReasoningEffort, ...] = ("minimal", "low", "medium", "high")
BATCH_PRICE_SHARE = 0.5  # pricing page: the Batch API costs 50 % of the standard price


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def tiled_size(width: int, height: int) -> tuple[int, int]:
    """Return the size a high-detail image is scaled to before tiling (never upscaled)."""
    _check_size(width, height)
    w, h = float(width), float(height)
    fit = min(1.0, MAX_TILED_SIDE_PX / max(w, h))
    w, h = w * fit, h * fit
    shrink = min(1.0, SHORTEST_TILED_SIDE_PX / min(w, h))
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def tile_count(width: int, height: int) -> int:
    """Return the 512-px tiles of a high-detail image of ``width`` x ``height``."""
    w, h = tiled_size(width, height)
    return math.ceil(w / TILE_SIDE_PX) * math.ceil(h / TILE_SIDE_PX)


def _ceil(value: float) -> int:
    return math.ceil(round(value, ROUNDING_DIGITS))


def patch_count(width: int, height: int) -> int:
    """Return the 32-px patches billed for an image, shrinking it first as OpenAI does above 1536."""
    _check_size(width, height)
    if _ceil(width / PATCH_SIDE_PX) * _ceil(height / PATCH_SIDE_PX) <= MAX_PATCHES:
        return _ceil(width / PATCH_SIDE_PX) * _ceil(height / PATCH_SIDE_PX)
    # Vision guide, step B: scale so the area holds 1536 patches, then shrink so that whole patches
    # along each side fit.
    r = math.sqrt(PATCH_SIDE_PX**2 * MAX_PATCHES / (width * height))
    across, down = width * r / PATCH_SIDE_PX, height * r / PATCH_SIDE_PX
    # A side under one patch (a sliver of an image) keeps its scale rather than collapsing to zero.
    r *= min((math.floor(side) / side for side in (across, down) if side >= 1), default=1.0)
    patches = _ceil(width * r / PATCH_SIDE_PX) * _ceil(height * r / PATCH_SIDE_PX)
    return min(MAX_PATCHES, patches)


@dataclass(frozen=True, slots=True)
class TileRule:
    """Tile models: ``base`` per image plus ``per_tile`` per 512-px tile; ``detail: low`` is ``base``."""

    base: int
    per_tile: int

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image; ``auto`` counts as ``high``, the larger."""
        _check_size(width, height)
        if detail == "low":
            return self.base
        return self.base + self.per_tile * tile_count(width, height)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"{self.base} + {self.per_tile} per 512-px tile (low detail: {self.base})"


@dataclass(frozen=True, slots=True)
class PatchRule:
    """Patch models: 32-px patches (at most 1536) times ``multiplier``, rounded up; ``detail`` is ignored."""

    multiplier: float

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail."""
        # Fraction: 100 patches x 1.62 must be 162, not 162.00000000000003 rounded up to 163.
        return math.ceil(patch_count(width, height) * Fraction(str(self.multiplier)))

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"32-px patches (at most {MAX_PATCHES}) x {self.multiplier}, any detail"


ImageRule = TileRule | PatchRule

# Vision guide, "Calculating costs", tile table (base tokens, tokens per tile).
GPT_4O_TILES = TileRule(base=85, per_tile=170)  # gpt-4o, gpt-4.1, chatgpt-4o-latest
GPT_4O_MINI_TILES = TileRule(base=2833, per_tile=5667)  # many tokens, each priced far below gpt-4o's
GPT_5_TILES = TileRule(base=70, per_tile=140)  # gpt-5, gpt-5-chat-latest
O_SERIES_TILES = TileRule(base=75, per_tile=150)  # o1, o3
# Vision guide, patch table (multiplier applied to the patch count).
MINI_PATCHES = PatchRule(multiplier=1.62)  # gpt-4.1-mini, gpt-5-mini
NANO_PATCHES = PatchRule(multiplier=2.46)  # gpt-4.1-nano, gpt-5-nano
O4_MINI_PATCHES = PatchRule(multiplier=1.72)  # o4-mini
# The most tokens any known rule bills for one image: gpt-4o-mini's tiles (up to 48,169 for 8 tiles).
CONSERVATIVE_RULE = GPT_4O_MINI_TILES


@dataclass(frozen=True, slots=True)
class Price:
    """List price in USD per 1M tokens, standard processing."""

    input: float
    output: float

    def batch(self) -> Price:
        """Return the Batch API price (half the standard one)."""
        return Price(self.input * BATCH_PRICE_SHARE, self.output * BATCH_PRICE_SHARE)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Return the USD cost of the given tokens, rounded to a millionth of a dollar."""
        return round((prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000, 6)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The rules of one model family: how images are billed, which parameters it takes, what it costs."""

    family: str
    image_rule: ImageRule
    reasoning: bool = False  # reasoning models: max_completion_tokens, no temperature
    efforts: tuple[ReasoningEffort, ...] = ()  # reasoning_effort values accepted; () refuses the parameter
    price: Price | None = None
    vision: bool = True  # False: the endpoint refuses images for this model
    known: bool = True

    @property
    def output_cap_parameter(self) -> str:
        """Return the name of the answer-length parameter the model accepts."""
        return OUTPUT_CAP_REASONING if self.reasoning else OUTPUT_CAP_CHAT

    @property
    def accepts_temperature(self) -> bool:
        """Return whether ``temperature`` may be sent (reasoning models refuse it)."""
        return not self.reasoning

    def image_tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image of ``width`` x ``height`` at ``detail``."""
        return self.image_rule.tokens(width, height, detail)

    def effort_for(self, wanted: ReasoningEffort) -> ReasoningEffort | None:
        """Return the accepted effort closest to ``wanted`` at or above it, or None when refused."""
        if not self.efforts or wanted not in EFFORTS_GPT_5:
            return None
        if wanted in self.efforts:
            return wanted
        above = [e for e in EFFORTS_GPT_5[EFFORTS_GPT_5.index(wanted):] if e in self.efforts]
        return above[0] if above else self.efforts[-1]


def _reasoning(family: str, rule: ImageRule, price: Price, *, vision: bool = True) -> ModelSpec:
    """Return a reasoning family's rules; gpt-5 models also accept ``minimal`` effort."""
    efforts = EFFORTS_GPT_5 if family.startswith("gpt-5") else EFFORTS_O_SERIES
    return ModelSpec(family, rule, reasoning=True, efforts=efforts, price=price, vision=vision)


# Image rules: the vision guide's tables above. Parameters: the reasoning guide. Prices: the pricing
# page, Price(input, output) in USD per 1M tokens, standard tier.
MODELS: dict[str, ModelSpec] = {
    spec.family: spec
    for spec in (
        ModelSpec("gpt-4o", GPT_4O_TILES, price=Price(2.50, 10.00)),
        ModelSpec("chatgpt-4o-latest", GPT_4O_TILES, price=Price(5.00, 15.00)),
        ModelSpec("gpt-4o-mini", GPT_4O_MINI_TILES, price=Price(0.15, 0.60)),
        ModelSpec("gpt-4.1", GPT_4O_TILES, price=Price(2.00, 8.00)),
        ModelSpec("gpt-4.1-mini", MINI_PATCHES, price=Price(0.40, 1.60)),
        ModelSpec("gpt-4.1-nano", NANO_PATCHES, price=Price(0.10, 0.40)),
        ModelSpec("gpt-5-chat-latest", GPT_5_TILES, price=Price(1.25, 10.00)),
        _reasoning("gpt-5", GPT_5_TILES, Price(1.25, 10.00)),
        _reasoning("gpt-5-mini", MINI_PATCHES, Price(0.25, 2.00)),
        _reasoning("gpt-5-nano", NANO_PATCHES, Price(0.05, 0.40)),
        _reasoning("o1", O_SERIES_TILES, Price(15.00, 60.00)),
        # o1-mini and o3-mini read no images, and o1-mini takes no reasoning_effort.
        ModelSpec("o1-mini", CONSERVATIVE_RULE, reasoning=True, price=Price(1.10, 4.40), vision=False),
        _reasoning("o3-mini", CONSERVATIVE_RULE, Price(1.10, 4.40), vision=False),
        _reasoning("o3", O_SERIES_TILES, Price(2.00, 8.00)),
        _reasoning("o4-mini", O4_MINI_PATCHES, Price(1.10, 4.40)),
        # The offline teacher's own model (vqa_distill.offline_teacher): billed like gpt-4o, free.
        ModelSpec("teacher-offline", GPT_4O_TILES, price=Price(0.0, 0.0)),
    )
}

def family_of(model: str) -> str | None:
    """Return the table's family of ``model`` (longest match, dated snapshots included), or None."""
    name = model.strip().lower()
    matches = [family for family in MODELS if name == family or name.startswith(family + "-")]
    return max(matches, key=len, default=None)


def model_spec(model: str) -> ModelSpec:
    """Return the rules of ``model``; an unknown name gets conservative rules named after it."""
    family = family_of(model)
    if family is None:
        return ModelSpec(model, CONSERVATIVE_RULE, known=False)
    return MODELS[family]
