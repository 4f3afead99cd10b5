"""The offline teacher's own token accounting: what the API bills for each model's text and images.

Image rules follow OpenAI's published pages, which are the source of every number below:
- vision guide, "Calculating costs": https://platform.openai.com/docs/guides/images-vision#calculating-costs
- pricing: https://openai.com/api/pricing/
Two schemes exist. Tile models scale a high-detail image to fit 2048x2048, then its shortest side to
768 px (never up), and bill ``base + per_tile * 512-px tiles``; ``detail: low`` bills ``base`` only.
Patch models cover the image with 32x32-px patches (at most 1536, shrinking the image to fit) and
bill ``ceil(patches * multiplier)``, whatever the ``detail``. Families outside OpenAI (Qwen-VL, Gemini,
Claude, GLM-4V, self-hosted Qwen2.5-VL and InternVL) follow their own sources' rules (vendor_images.py).
Unknown models get the gpt-4o tile rule.
Text is estimated at ~4 characters per token: no tokenizer dependency, and the same for every model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from vqa_distill.offline_teacher.rules.families import model_family
from vqa_distill.offline_teacher.rules.vendor_images import VendorRule, vendor_rule

DETAIL_LOW = "low"
DETAIL_HIGH = "high"
DETAIL_AUTO = "auto"  # billed as high: the larger of the two, which the API may pick
DETAILS = (DETAIL_LOW, DETAIL_HIGH, DETAIL_AUTO)

CHARS_PER_TOKEN = 4  # rough average for English text with OpenAI's tokenizers

# Tile scheme (vision guide): sizes in pixels.
TILE_SIDE_PX = 512
MAX_IMAGE_SIDE_PX = 2048  # a high-detail image is first scaled down to fit a 2048x2048 square
SHORTEST_SIDE_PX = 768  # ...then down so that its shortest side is at most 768 px

# Patch scheme (vision guide): sizes in pixels, budget in patches.
PATCH_SIDE_PX = 32
MAX_PATCHES = 1536  # an image needing more patches is shrunk to fit this many
FLOAT_SLACK = 1e-9  # float noise ignored where a product should land on a whole number


@dataclass(frozen=True)
class TileRule:
    """Tokens of a tile model: ``base`` per image plus ``per_tile`` per 512-px tile (high detail)."""

    base: int
    per_tile: int


@dataclass(frozen=True)
class PatchRule:
    """Tokens of a patch model: 32-px patches (at most 1536) times ``multiplier``, rounded up."""

    multiplier: float


ImageRule = TileRule | PatchRule | VendorRule

GPT_4O_TILES = TileRule(base=85, per_tile=170)  # gpt-4o, gpt-4.1, gpt-4.5, chatgpt-4o-latest
GPT_4O_MINI_TILES = TileRule(base=2833, per_tile=5667)  # many tokens, each priced far below gpt-4o's
GPT_5_TILES = TileRule(base=70, per_tile=140)  # gpt-5, gpt-5-chat-latest
O_SERIES_TILES = TileRule(base=75, per_tile=150)  # o1, o1-pro, o3

RULES: dict[str, ImageRule] = {  # model family (dated snapshot suffix removed) -> its rule
    "gpt-4o": GPT_4O_TILES,
    "chatgpt-4o-latest": GPT_4O_TILES,
    "gpt-4.1": GPT_4O_TILES,
    "gpt-4.5-preview": GPT_4O_TILES,
    "gpt-4o-mini": GPT_4O_MINI_TILES,
    "gpt-5": GPT_5_TILES,
    "gpt-5-chat-latest": GPT_5_TILES,
    "o1": O_SERIES_TILES,
    "o1-pro": O_SERIES_TILES,
    "o3": O_SERIES_TILES,
    "gpt-4.1-mini": PatchRule(multiplier=1.62),
    "gpt-5-mini": PatchRule(multiplier=1.62),
    "gpt-4.1-nano": PatchRule(multiplier=2.46),
    "gpt-5-nano": PatchRule(multiplier=2.46),
    "o4-mini": PatchRule(multiplier=1.72),
}
DEFAULT_RULE: ImageRule = GPT_4O_TILES  # for models the table does not know


def image_rule(model: str) -> ImageRule:
    """Return the image rule of ``model``, matched by family so dated snapshots bill like their family."""
    return vendor_rule(model) or RULES.get(model_family(model), DEFAULT_RULE)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def tiled_size(width: int, height: int) -> tuple[int, int]:
    """Return the size a high-detail image is scaled to before tiling (never upscaled)."""
    _check_size(width, height)
    w, h = float(width), float(height)
    fit = min(1.0, MAX_IMAGE_SIDE_PX / max(w, h))
    w, h = w * fit, h * fit
    shrink = min(1.0, SHORTEST_SIDE_PX / min(w, h))
    # Whole pixels, so float noise (768.0000001) cannot add a tile.
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def tile_count(width: int, height: int) -> int:
    """Return how many 512-px tiles cover the scaled high-detail image."""
    w, h = tiled_size(width, height)
    return math.ceil(w / TILE_SIDE_PX) * math.ceil(h / TILE_SIDE_PX)


def patch_count(width: int, height: int) -> int:
    """Return how many 32-px patches a patch model bills for the image, following the guide's steps."""
    _check_size(width, height)
    if math.ceil(width / PATCH_SIDE_PX) * math.ceil(height / PATCH_SIDE_PX) <= MAX_PATCHES:
        return math.ceil(width / PATCH_SIDE_PX) * math.ceil(height / PATCH_SIDE_PX)
    # Shrink so the area fits the budget, then a little more so the tighter side fills whole patches.
    shrink = math.sqrt(PATCH_SIDE_PX**2 * MAX_PATCHES / (width * height))
    across, down = width * shrink / PATCH_SIDE_PX, height * shrink / PATCH_SIDE_PX
    fit = min(max(1, math.floor(across)) / across, max(1, math.floor(down)) / down)
    across, down = across * fit, down * fit
    patches = math.ceil(across - FLOAT_SLACK) * math.ceil(down - FLOAT_SLACK)
    return min(patches, MAX_PATCHES)


def image_tokens(
    model: str, width: int, height: int, detail: str = DETAIL_HIGH, rule: ImageRule | None = None
) -> int:
    """Return the prompt tokens ``model`` bills for one ``width`` x ``height`` image at ``detail``.

    ``rule`` replaces the model's own (a server billing an alias as another family, or a self-hosted
    model started with its own pixel budget).
    """
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {detail!r}")
    _check_size(width, height)
    rule = image_rule(model) if rule is None else rule
    if isinstance(rule, PatchRule):
        return math.ceil(patch_count(width, height) * rule.multiplier - FLOAT_SLACK)
    if not isinstance(rule, TileRule):  # a family outside OpenAI: detail does not matter
        return rule.tokens(width, height)
    if detail == DETAIL_LOW:
        return rule.base
    return rule.base + rule.per_tile * tile_count(width, height)


def text_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: ceil(len / 4), so any non-empty text counts at least 1."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(
    model: str,
    texts: Iterable[str],
    images: Iterable[tuple[int, int, str]] = (),
    rule: ImageRule | None = None,
) -> int:
    """Return the prompt tokens of a request to ``model``: every text part plus every image.

    ``images`` holds ``(width, height, detail)`` of each image at its decoded size; ``rule``, when given,
    replaces the model's own image rule.
    """
    text = sum(text_tokens(t) for t in texts)
    return text + sum(image_tokens(model, w, h, d, rule) for w, h, d in images)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Cut ``text`` so that ``text_tokens`` of the result is at most ``max_tokens``."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    return text[: max_tokens * CHARS_PER_TOKEN]
