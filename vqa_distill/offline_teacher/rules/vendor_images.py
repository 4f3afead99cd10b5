"""Image tokens of teachers outside OpenAI, each rule copied from its own published source.

The offline teacher's relay and self-hosted modes serve these names and bill ``usage.prompt_tokens``
by these rules, so a client estimating with a wrong rule meets the truth in every answer. None of
these families looks at ``detail``. Worked examples (all in tests/unit/test_offline_teacher_vendor_images.py):

- **Qwen-VL on DashScope** (``qwen-vl-max``, ``qwen-vl-plus``, ``qwen2.5-vl-*``): the sides are rounded
  to multiples of 28 px within 4 to 1,280 tokens' worth of pixels, one token per 28x28 px, plus 2 for
  ``<|vision_start|>``/``<|vision_end|>``. Source: Alibaba Cloud Model Studio, "Image and video
  understanding", image token calculation (https://www.alibabacloud.com/help/en/model-studio/vision),
  default without ``vl_high_resolution_images``. 640x480 -> 644x476 = 23x17 -> 393;
  1024x1024 -> 980x980 = 35x35 -> 1,227; 4000x3000 -> 1148x840 = 41x30 -> 1,232; 28x28 -> 56x56 -> 6.
  The 2025-08 snapshots and later (Qwen3-VL, 32-px tokens) are not modelled.
- **Gemini 2.x** (``gemini-2.0-*``, ``gemini-2.5-*``): 258 tokens when both sides are <= 384 px, else
  258 per 768x768 tile, tiles = ceil(w/768) x ceil(h/768). Source: Gemini API, "Understand and count
  tokens" (https://ai.google.dev/gemini-api/docs/tokens). 384x384 -> 258; 1024x768 -> 2 tiles, 516;
  1920x1080 -> 6 tiles, 1,548; 4000x3000 -> 24 tiles, 6,192.
- **Claude** (``claude-*``): scaled down (aspect kept) until the long edge is <= 1,568 px and the image
  is <= ~1,600 tokens, then tokens = ceil(w x h / 750). Source: Anthropic, "Vision", evaluate image
  size (https://docs.anthropic.com/en/docs/build-with-claude/vision): "If your image's long edge is more
  than 1568 pixels, or your image is more than ~1,600 tokens, it will first be scaled down". Its
  examples: 200x200 -> ~54, 1000x1000 -> ~1,334, 1092x1092 -> ~1,590 (ceil gives all three). The
  "~1,600 tokens" is taken literally: at most 1,600 x 750 = 1,200,000 px, each side then rounded down.
  The page also recommends <= 1.15 MP for latency, and lists 784x1568 (1.23 MP) as unresized: the
  threshold is approximate there, and 1.2 MP sits between. 4000x3000 -> 1264x948 -> 1,598.
- **GLM-4V** (``glm-4v``, ``glm-4v-plus``, ...): 1,602 tokens per image, whatever its size. An
  assumption: Zhipu publishes no per-image rule for its hosted models, so they are billed like the open
  glm-4v-9b, which resizes every image to 1120x1120 (config ``image_size`` 1120, ``patch_size`` 14:
  80x80 patches), halves each side with a 2x2 convolution (40x40 = 1,600) and adds begin/end-of-image
  embeddings (vLLM's ``glm4v.py``: ``get_num_image_feature_tokens`` = 1,600 + 2).
- **Self-hosted Qwen2.5-VL** (``Qwen/Qwen2.5-VL-*``, as vLLM and SGLang name it): the same rounding with
  the Hugging Face processor's defaults, ``min_pixels`` 3,136 and ``max_pixels`` 12,845,056 (16,384
  tokens; ``preprocessor_config.json``), +2 markers. 1024x1024 -> 1036x1036 = 37x37 -> 1,371;
  4000x3000 -> 4004x2996 = 143x107 -> 15,303. Operators usually cap it
  (``--mm-processor-kwargs '{"max_pixels": ...}'``): the server's ``qwen_max_pixels`` says what they chose.
- **Self-hosted InternVL2.5** (``OpenGVLab/InternVL2_5-*``): the image is cut into 448x448 tiles on the
  grid (i x j <= 12) whose aspect ratio is closest to the image's, plus a 448x448 thumbnail when there is
  more than one tile; 256 tokens per tile ((448/14)^2 patches, pixel shuffle 0.5), +2 for
  ``<img>``/``</img>``. Source: the model card's ``dynamic_preprocess`` (max_num 12, use_thumbnail) and
  vLLM's ``internvl.py``. 448x448 -> 1 tile, 258; 1024x1024 -> 3x3 + 1, 2,562;
  1920x1080 -> 4x2 + 1, 2,306; 4000x3000 -> 4x3 + 1, 3,330.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FLOAT_SLACK = 1e-9  # float noise ignored where a scaled side should land on a whole pixel

# Qwen2 / Qwen2.5-VL (DashScope page and the HF processor): 14-px patches merged 2x2.
QWEN_TOKEN_SIDE_PX = 28
QWEN_MARKERS = 2  # <|vision_start|> and <|vision_end|>
DASHSCOPE_MIN_PIXELS = 4 * 28 * 28  # 3,136 px: 4 tokens
DASHSCOPE_MAX_PIXELS = 1280 * 28 * 28  # 1,003,520 px: 1,280 tokens (vl_high_resolution_images off)
HF_QWEN_MIN_PIXELS = 56 * 56  # 3,136 px, the processor's preprocessor_config.json
HF_QWEN_MAX_PIXELS = 16384 * 28 * 28  # 12,845,056 px: 16,384 tokens

# Gemini 2.x (Gemini API, "Understand and count tokens").
GEMINI_TOKENS_PER_TILE = 258
GEMINI_SMALL_SIDE_PX = 384  # both sides at most this: one 258-token image
GEMINI_TILE_SIDE_PX = 768

# Claude (Anthropic, "Vision").
CLAUDE_MAX_EDGE_PX = 1568
CLAUDE_MAX_TOKENS = 1600  # "~1,600 tokens", taken literally
CLAUDE_PIXELS_PER_TOKEN = 750

# GLM-4V (glm-4v-9b's config and vision encoder; an assumption for the hosted models).
GLM_4V_TOKENS = (1120 // 14 // 2) ** 2 + 2  # 1,602: 40x40 after the 2x2 convolution, + begin/end of image

# InternVL2.5 (model card's dynamic_preprocess, vLLM's internvl.py).
INTERNVL_TILE_SIDE_PX = 448
INTERNVL_TOKENS_PER_TILE = 256  # (448 / 14)^2 = 1,024 patches, pixel shuffle 0.5 -> 256
INTERNVL_MAX_TILES = 12
INTERNVL_MARKERS = 2  # <img> and </img>


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


@dataclass(frozen=True)
class PixelBudgetRule:
    """Qwen2/2.5-VL's ``smart_resize``: sides on a 28-px grid within a pixel budget, one token per cell."""

    name: str  # "dashscope" or "hf-processor": which default the budget comes from
    min_pixels: int
    max_pixels: int

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """Return the ``(width, height)`` the model sees: multiples of 28 within the budget."""
        _check_size(width, height)
        side = QWEN_TOKEN_SIDE_PX
        # Python's round() (half to even), as the published code uses it.
        w_bar, h_bar = round(width / side) * side, round(height / side) * side
        if w_bar * h_bar > self.max_pixels:
            beta = math.sqrt(width * height / self.max_pixels)
            w_bar = max(side, math.floor(width / beta / side) * side)
            h_bar = max(side, math.floor(height / beta / side) * side)
        elif w_bar * h_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (width * height))
            w_bar = math.ceil(width * beta / side) * side
            h_bar = math.ceil(height * beta / side) * side
        return w_bar, h_bar

    def tokens(self, width: int, height: int) -> int:
        """Return the image's tokens: one per 28x28 cell of the resized image, plus the two markers."""
        w_bar, h_bar = self.resized(width, height)
        return (w_bar // QWEN_TOKEN_SIDE_PX) * (h_bar // QWEN_TOKEN_SIDE_PX) + QWEN_MARKERS


@dataclass(frozen=True)
class GeminiTileRule:
    """Gemini 2.x: 258 tokens for a small image, else 258 per 768x768 tile."""

    def tokens(self, width: int, height: int) -> int:
        """Return the image's tokens."""
        _check_size(width, height)
        if width <= GEMINI_SMALL_SIDE_PX and height <= GEMINI_SMALL_SIDE_PX:
            return GEMINI_TOKENS_PER_TILE
        tiles = math.ceil(width / GEMINI_TILE_SIDE_PX) * math.ceil(height / GEMINI_TILE_SIDE_PX)
        return GEMINI_TOKENS_PER_TILE * tiles


@dataclass(frozen=True)
class ClaudeAreaRule:
    """Claude: scaled down into 1,568 px on the long edge and ~1,600 tokens, then w x h / 750."""

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """Return the size Claude bills: never scaled up, each scaled side rounded down."""
        _check_size(width, height)
        max_area = CLAUDE_MAX_TOKENS * CLAUDE_PIXELS_PER_TOKEN
        scale = min(1.0, CLAUDE_MAX_EDGE_PX / max(width, height), math.sqrt(max_area / (width * height)))
        if scale >= 1.0:
            return width, height
        return max(1, math.floor(width * scale + FLOAT_SLACK)), max(
            1, math.floor(height * scale + FLOAT_SLACK)
        )

    def tokens(self, width: int, height: int) -> int:
        """Return the image's tokens: ceil(w x h / 750) of the billed size."""
        w, h = self.resized(width, height)
        return math.ceil(w * h / CLAUDE_PIXELS_PER_TOKEN)


@dataclass(frozen=True)
class FixedImageRule:
    """A model that resizes every image to one size: the same tokens for any image (GLM-4V)."""

    per_image: int

    def tokens(self, width: int, height: int) -> int:
        """Return the fixed tokens of one image."""
        _check_size(width, height)
        return self.per_image


@dataclass(frozen=True)
class InternVLTileRule:
    """InternVL2.5's dynamic tiling: 448-px tiles on the closest grid, a thumbnail, 256 tokens each."""

    max_tiles: int = INTERNVL_MAX_TILES

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """Return ``(columns, rows)`` of the tile grid chosen for the image."""
        _check_size(width, height)
        aspect = width / height
        # Every grid of at most max_tiles tiles, fewest tiles first. Grids of as many tiles keep the order
        # of a Python set built the way the published code builds it, so ties resolve as they do there.
        limit = self.max_tiles
        candidates = {
            (i, j)
            for n in range(1, limit + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if i * j <= limit
        }
        grids = sorted(candidates, key=lambda g: g[0] * g[1])
        best, best_diff = (1, 1), math.inf
        for cols, rows in grids:
            diff = abs(aspect - cols / rows)
            if diff < best_diff:
                best, best_diff = (cols, rows), diff
            elif diff == best_diff and width * height > 0.5 * INTERNVL_TILE_SIDE_PX**2 * cols * rows:
                best = (cols, rows)  # as close, and the image has the pixels to fill more tiles
        return best

    def tiles(self, width: int, height: int) -> int:
        """Return the tiles the model reads: the grid's, plus a thumbnail when the grid has more than one."""
        cols, rows = self.grid(width, height)
        return cols * rows + (1 if cols * rows > 1 else 0)

    def tokens(self, width: int, height: int) -> int:
        """Return the image's tokens: 256 per tile, plus ``<img>`` and ``</img>``."""
        return INTERNVL_TOKENS_PER_TILE * self.tiles(width, height) + INTERNVL_MARKERS


VendorRule = PixelBudgetRule | GeminiTileRule | ClaudeAreaRule | FixedImageRule | InternVLTileRule

QWEN_DASHSCOPE = PixelBudgetRule("dashscope", DASHSCOPE_MIN_PIXELS, DASHSCOPE_MAX_PIXELS)
QWEN_SELF_HOSTED = PixelBudgetRule("hf-processor", HF_QWEN_MIN_PIXELS, HF_QWEN_MAX_PIXELS)
GEMINI = GeminiTileRule()
CLAUDE = ClaudeAreaRule()
GLM_4V = FixedImageRule(GLM_4V_TOKENS)
INTERNVL = InternVLTileRule()

# Name prefixes (lower case) -> rule; the first match wins, so the longer prefixes come first.
# Self-hosted servers name a model by its Hugging Face repository ("Qwen/..."), DashScope by its own
# lower-case names ("qwen2.5-vl-72b-instruct"): the same weights, billed by different budgets.
VENDOR_PREFIXES: tuple[tuple[str, VendorRule], ...] = (
    ("qwen/qwen2.5-vl-", QWEN_SELF_HOSTED),
    ("qwen/qwen2-vl-", QWEN_SELF_HOSTED),
    ("opengvlab/internvl2_5-", INTERNVL),
    ("qwen-vl-", QWEN_DASHSCOPE),
    ("qwen2.5-vl-", QWEN_DASHSCOPE),
    ("qwen2-vl-", QWEN_DASHSCOPE),
    ("gemini-2.0-", GEMINI),
    ("gemini-2.5-", GEMINI),
    ("claude-", CLAUDE),
    ("glm-4v", GLM_4V),
)
GOOGLE_MODEL_PREFIX = "models/"  # Google's endpoint also accepts "models/gemini-2.0-flash"


def vendor_rule(model: str) -> VendorRule | None:
    """Return the rule of ``model`` when it belongs to a family outside OpenAI, else None."""
    name = model.strip().lower().removeprefix(GOOGLE_MODEL_PREFIX)
    for prefix, rule in VENDOR_PREFIXES:
        if name.startswith(prefix):
            return rule
    return None
