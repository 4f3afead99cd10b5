"""How each model family counts an image's prompt tokens, and the pixels it takes before resizing it itself.

Every rule is its provider's published one (docs/models.md names each source):

- ``TileRule`` / ``PatchRule``: OpenAI's vision guide, "Calculating costs"
  (https://platform.openai.com/docs/guides/images-vision#calculating-costs);
- ``QwenPatchRule``: one token per 28x28 px after Qwen's ``smart_resize`` (sides rounded to multiples of
  28 within a pixel budget) plus two vision markers: DashScope's Qwen-VL guide, and for self-hosted
  Qwen2/2.5-VL their ``preprocessor_config.json`` (min 56x56, max 12,845,056 px); GLM-4.1V/4.5V use
  the same arithmetic with their own budget (transformers' ``Glm4vImageProcessor``);
- ``GeminiTileRule``: Gemini's token guide (https://ai.google.dev/gemini-api/docs/tokens): 258 tokens
  when both sides are at most 384 px, else 258 per 768x768 tile;
- ``ClaudeRule``: Anthropic's vision guide (https://docs.anthropic.com/en/docs/build-with-claude/vision):
  w*h/750 once the image fits 1,568 px on its long edge and ~1.15 megapixels;
- ``InternVLRule``: InternVL's ``dynamic_preprocess`` (model cards of OpenGVLab/InternVL2_5 and 3):
  the 448-px tile grid closest to the image's aspect ratio, at most 12 tiles, plus a thumbnail,
  256 tokens each;
- ``FixedRule``: a model that resizes every image to one square (GLM-4V: 1120x1120, 1,602 tokens).

Each rule also says what to send (``budget``): the pixels the model would keep, so no pixel is sent
that the model will not bill or see, and the estimate of what is sent is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from vqa_distill.teacher.images.budget import PixelBudget

Detail = Literal["auto", "low", "high"]

# Tile scheme (OpenAI's vision guide): a high-detail image is scaled down to fit a 2048x2048 square,
# then down again so its shortest side is at most 768 px (never up), and billed per 512-px tile.
TILE_SIDE_PX = 512
MAX_TILED_SIDE_PX = 2048
SHORTEST_TILED_SIDE_PX = 768

# Patch scheme (OpenAI's vision guide): 32x32-px patches; an image needing more than 1536 is shrunk to fit.
PATCH_SIDE_PX = 32
MAX_PATCHES = 1536

ROUNDING_DIGITS = 9  # float noise (33.000000001 patches) must not add a patch or a pixel


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def _ceil(value: float) -> int:
    return math.ceil(round(value, ROUNDING_DIGITS))


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
    """OpenAI tile models: ``base`` per image plus ``per_tile`` per 512-px tile; ``detail: low`` is ``base``."""

    base: int
    per_tile: int

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image; ``auto`` counts as ``high``, the larger."""
        _check_size(width, height)
        if detail == "low":
            return self.base
        return self.base + self.per_tile * tile_count(width, height)

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: the run's pixel budget (the API scales the image down itself)."""
        return PixelBudget(max_pixels)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"{self.base} + {self.per_tile} per 512-px tile (low detail: {self.base})"


@dataclass(frozen=True, slots=True)
class PatchRule:
    """OpenAI patch models: 32-px patches (at most 1536) times ``multiplier``, rounded up; ``detail`` is ignored."""

    multiplier: float

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail."""
        # Fraction: 100 patches x 1.62 must be 162, not 162.00000000000003 rounded up to 163.
        return math.ceil(patch_count(width, height) * Fraction(str(self.multiplier)))

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: the run's pixel budget (the API shrinks the image to 1536 patches itself)."""
        return PixelBudget(max_pixels)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"32-px patches (at most {MAX_PATCHES}) x {self.multiplier}, any detail"


@dataclass(frozen=True, slots=True)
class QwenPatchRule:
    """Qwen-VL and GLM-4.1V/4.5V: one token per 28x28 px of the ``smart_resize``d image, plus the markers."""

    min_pixels: int
    max_pixels: int
    factor: int = 28  # 14-px patches merged 2x2
    markers: int = 2  # <|vision_start|> and <|vision_end|> (GLM: begin and end of image)

    def resized(self, width: int, height: int, max_pixels: int | None = None) -> tuple[int, int]:
        """Return the size the model's processor resizes ``width`` x ``height`` to (multiples of ``factor``)."""
        return PixelBudget(
            min(self.max_pixels, max_pixels or self.max_pixels), multiple=self.factor, min_pixels=self.min_pixels
        ).target(width, height)

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail."""
        _check_size(width, height)
        w, h = self.resized(width, height)
        return (w // self.factor) * (h // self.factor) + self.markers

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: the size the model resizes to, within the run's budget too."""
        return PixelBudget(min(self.max_pixels, max_pixels), multiple=self.factor, min_pixels=self.min_pixels)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        most = self.max_pixels // self.factor**2
        return f"one token per {self.factor}x{self.factor} px (at most {most:,}) + {self.markers}, any detail"


@dataclass(frozen=True, slots=True)
class GeminiTileRule:
    """Gemini 2.x: ``per_tile`` tokens for a small image (both sides <= 384 px), else per 768x768 tile."""

    per_tile: int = 258
    small_side: int = 384
    tile_side: int = 768

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail."""
        _check_size(width, height)
        if width <= self.small_side and height <= self.small_side:
            return self.per_tile
        return self.per_tile * math.ceil(width / self.tile_side) * math.ceil(height / self.tile_side)

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: the run's pixel budget (every pixel is billed, in tiles)."""
        return PixelBudget(max_pixels)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"{self.per_tile} per {self.tile_side}-px tile ({self.per_tile} when both sides <= {self.small_side})"


@dataclass(frozen=True, slots=True)
class ClaudeRule:
    """Claude: w*h/750 of the image once it fits ``max_side`` px on its long edge and ``max_pixels``."""

    max_side: int = 1568
    max_pixels: int = 1_150_000
    pixels_per_token: int = 750

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail (rounded up: an estimate stays above)."""
        _check_size(width, height)
        w, h = self.budget(self.max_pixels).target(width, height)
        return math.ceil(w * h / self.pixels_per_token)

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: the size Claude keeps without resizing, within the run's budget too."""
        return PixelBudget(min(self.max_pixels, max_pixels), max_side=self.max_side)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"w*h/{self.pixels_per_token} within {self.max_side} px and {self.max_pixels / 1e6:g} MP"


@dataclass(frozen=True, slots=True)
class InternVLRule:
    """InternVL 2.5/3: the tile grid closest to the image's shape, a thumbnail when tiled, ``per_tile`` each."""

    tile_side: int = 448
    max_tiles: int = 12
    per_tile: int = 256  # (448 / 14)^2 patches, pixel-shuffled by 0.5 per side
    markers: int = 2  # <img> and </img>

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """Return (columns, rows) of 448-px tiles the image is resized to (InternVL's ``dynamic_preprocess``)."""
        _check_size(width, height)
        grids = sorted(
            ((c, r) for c in range(1, self.max_tiles + 1) for r in range(1, self.max_tiles + 1) if c * r <= self.max_tiles),
            key=lambda grid: grid[0] * grid[1],
        )
        aspect, area = width / height, width * height
        best, best_diff = (1, 1), float("inf")
        for columns, rows in grids:
            diff = abs(aspect - columns / rows)
            if diff < best_diff:
                best, best_diff = (columns, rows), diff
            elif diff == best_diff and area > 0.5 * self.tile_side**2 * columns * rows:
                best = (columns, rows)  # same shape: more tiles while the image fills half of them
        return best

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever the detail."""
        columns, rows = self.grid(width, height)
        tiles = columns * rows + (1 if columns * rows > 1 else 0)  # the thumbnail
        return tiles * self.per_tile + self.markers

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: no more pixels than the largest grid holds."""
        return PixelBudget(min(max_pixels, self.max_tiles * self.tile_side**2))

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"{self.per_tile} per {self.tile_side}-px tile (at most {self.max_tiles}, + a thumbnail) + {self.markers}"


@dataclass(frozen=True, slots=True)
class FixedRule:
    """A model that resizes every image to one ``side`` x ``side`` square and bills ``tokens`` for it."""

    tokens_per_image: int
    side: int

    def tokens(self, width: int, height: int, detail: Detail = "high") -> int:
        """Return the prompt tokens of one image, whatever its size or detail."""
        _check_size(width, height)
        return self.tokens_per_image

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return what to send: no side longer than the square the model sees."""
        return PixelBudget(min(max_pixels, self.side * self.side), max_side=self.side)

    def describe(self) -> str:
        """Return the rule in words, for docs and log lines."""
        return f"{self.tokens_per_image:,} per image (resized to {self.side}x{self.side})"


ImageRule = TileRule | PatchRule | QwenPatchRule | GeminiTileRule | ClaudeRule | InternVLRule | FixedRule
