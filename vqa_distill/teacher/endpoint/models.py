"""What the client knows of each teacher model family: image tokens, accepted parameters and prices.

OpenAI's families, from its published pages:
- image tokens: the vision guide, "Calculating costs"
  (https://platform.openai.com/docs/guides/images-vision#calculating-costs);
- parameters: the reasoning guide (https://platform.openai.com/docs/guides/reasoning): reasoning
  models take ``max_completion_tokens`` (not ``max_tokens``), refuse ``temperature``, and take
  ``reasoning_effort``; ``minimal`` exists for gpt-5 models only;
- prices: the pricing page (https://openai.com/api/pricing/), USD per 1M tokens, standard tier;
  the Batch API bills half of them.

Families outside OpenAI (Qwen-VL through DashScope, Gemini 2.x, Claude, GLM-4V, self-hosted Qwen2.5-VL
and InternVL) follow their own providers' pages, named per rule in ``image_rules.py`` and in
docs/models.md; their prices differ per region and tier and are not in the table.

A model name matches its family when it equals it or continues it after a dash, so dated snapshots
(``gpt-4o-mini-2024-07-18``) follow their family; the longest family wins, so gpt-4o-mini is never
gpt-4o. A name with an organisation (``google/gemini-2.5-flash``, ``OpenGVLab/InternVL3-78B``) that
matches nothing as a whole is matched by what follows its last slash. A name the table does not know
gets the most expensive image rule of all (``CONSERVATIVE_RULE``) until its answers' ``usage``
calibrates an estimate (``ratelimit/calibration.py``), chat parameters and no price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vqa_distill.teacher.endpoint.image_rules import (
    ClaudeRule,
    Detail,
    FixedRule,
    GeminiTileRule,
    ImageRule,
    InternVLRule,
    PatchRule,
    QwenPatchRule,
    TileRule,
    patch_count,
    tile_count,
)
from vqa_distill.teacher.images.budget import PixelBudget

__all__ = ["MODELS", "Detail", "ModelSpec", "Price", "family_of", "model_spec", "patch_count", "tile_count"]

ReasoningEffort = Literal["minimal", "low", "medium", "high"]

OUTPUT_CAP_CHAT = "max_tokens"
OUTPUT_CAP_REASONING = "max_completion_tokens"
EFFORTS_O_SERIES: tuple[ReasoningEffort, ...] = ("low", "medium", "high")
EFFORTS_GPT_5: tuple[ReasoningEffort, ...] = ("minimal", "low", "medium", "high")
# Gemini's OpenAI compatibility maps low / medium / high to thinking budgets of 1K / 8K / 24K tokens
# (https://ai.google.dev/gemini-api/docs/openai); 2.0 models do not think.
EFFORTS_GEMINI_2_5: tuple[ReasoningEffort, ...] = ("low", "medium", "high")
BATCH_PRICE_SHARE = 0.5  # pricing page: the Batch API costs 50 % of the standard price

# OpenAI's vision guide, "Calculating costs", tile table (base tokens, tokens per tile).
GPT_4O_TILES = TileRule(base=85, per_tile=170)  # gpt-4o, gpt-4.1, chatgpt-4o-latest
GPT_4O_MINI_TILES = TileRule(base=2833, per_tile=5667)  # many tokens, each priced far below gpt-4o's
GPT_5_TILES = TileRule(base=70, per_tile=140)  # gpt-5, gpt-5-chat-latest
O_SERIES_TILES = TileRule(base=75, per_tile=150)  # o1, o3
# OpenAI's vision guide, patch table (multiplier applied to the patch count).
MINI_PATCHES = PatchRule(multiplier=1.62)  # gpt-4.1-mini, gpt-5-mini
NANO_PATCHES = PatchRule(multiplier=2.46)  # gpt-4.1-nano, gpt-5-nano
O4_MINI_PATCHES = PatchRule(multiplier=1.72)  # o4-mini
# The most tokens any known rule bills for one image: gpt-4o-mini's tiles (up to 48,169 for 8 tiles).
CONSERVATIVE_RULE = GPT_4O_MINI_TILES

# DashScope's Qwen-VL guide: 28x28 px a token, 4 to 1,280 tokens an image by default (+2 markers).
DASHSCOPE_QWEN_PATCHES = QwenPatchRule(min_pixels=4 * 28 * 28, max_pixels=1280 * 28 * 28)
# Qwen2/2.5-VL's preprocessor_config.json on Hugging Face: min_pixels 3136, max_pixels 12845056
# (16,384 tokens), what vLLM, SGLang and LMDeploy use unless started with other limits.
SELF_HOSTED_QWEN_PATCHES = QwenPatchRule(min_pixels=56 * 56, max_pixels=12_845_056)
# transformers' Glm4vImageProcessor: 112x112 px at least, 28*28*15000 px over two frames (an image is
# two), so 7,500 tokens at most.
GLM_4_5V_PATCHES = QwenPatchRule(min_pixels=112 * 112, max_pixels=28 * 28 * 7500)
# GLM-4V-9B (THUDM/glm-4v-9b, config.json and modeling_chatglm.py): every image becomes 1120x1120, 14-px
# patches downsampled 2x2: 40*40 = 1,600 tokens, + begin and end of image.
GLM_4V_FIXED = FixedRule(tokens_per_image=1602, side=1120)
GEMINI_TILES = GeminiTileRule()
CLAUDE_PIXELS = ClaudeRule()
INTERNVL_TILES = InternVLRule()
# Anthropic's OpenAI SDK compatibility (https://docs.anthropic.com/en/api/openai-sdk): temperature is
# capped at 1; response_format and reasoning_effort are ignored. Zhipu's API takes temperature in [0, 1].
TEMPERATURE_CAP_CLAUDE = 1.0
TEMPERATURE_CAP_GLM = 1.0


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
    max_temperature: float | None = None  # a higher temperature is capped (Claude, GLM: 1)
    honours_response_format: bool = True  # False: structured outputs are ignored (Claude's compatibility)

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

    def budget(self, max_pixels: int) -> PixelBudget:
        """Return the size to prepare images at: the run's ``max_pixels``, narrowed to what the model keeps."""
        return self.image_rule.budget(max_pixels)

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


# OpenAI: image rules from the vision guide, parameters from the reasoning guide, Price(input, output)
# in USD per 1M tokens from the pricing page. Others: see the rules above and docs/models.md.
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
        # Qwen-VL through DashScope's OpenAI-compatible mode (qwen-vl-max-latest, qwen2.5-vl-72b-instruct...).
        ModelSpec("qwen-vl-max", DASHSCOPE_QWEN_PATCHES),
        ModelSpec("qwen-vl-plus", DASHSCOPE_QWEN_PATCHES),
        ModelSpec("qwen2.5-vl", DASHSCOPE_QWEN_PATCHES),
        ModelSpec("qwen2-vl", DASHSCOPE_QWEN_PATCHES),
        # Self-hosted (vLLM, SGLang, LMDeploy) under their Hugging Face names: Qwen/Qwen2.5-VL-72B-Instruct.
        ModelSpec("qwen/qwen2.5-vl", SELF_HOSTED_QWEN_PATCHES),
        ModelSpec("qwen/qwen2-vl", SELF_HOSTED_QWEN_PATCHES),
        ModelSpec("internvl2", INTERNVL_TILES),
        ModelSpec("internvl2_5", INTERNVL_TILES),
        ModelSpec("internvl3", INTERNVL_TILES),
        ModelSpec("internvl3_5", INTERNVL_TILES),
        # Gemini 2.x through its OpenAI compatibility; 2.5 models think, and take reasoning_effort for it.
        ModelSpec("gemini-2.0", GEMINI_TILES),
        ModelSpec("gemini-2.5", GEMINI_TILES, efforts=EFFORTS_GEMINI_2_5),
        # Claude through Anthropic's OpenAI SDK compatibility: every Claude 3 and 4 model reads images the same way.
        ModelSpec(
            "claude", CLAUDE_PIXELS, max_temperature=TEMPERATURE_CAP_CLAUDE, honours_response_format=False
        ),
        # Zhipu's GLM-4V (glm-4v, glm-4v-plus, glm-4v-flash) and the GLM-4.1V/4.5V generation.
        ModelSpec("glm-4v", GLM_4V_FIXED, max_temperature=TEMPERATURE_CAP_GLM),
        ModelSpec("glm-4.1v", GLM_4_5V_PATCHES, max_temperature=TEMPERATURE_CAP_GLM),
        ModelSpec("glm-4.5v", GLM_4_5V_PATCHES, max_temperature=TEMPERATURE_CAP_GLM),
    )
}


def _family_match(name: str) -> str | None:
    matches = [family for family in MODELS if name == family or name.startswith(family + "-")]
    return max(matches, key=len, default=None)


def family_of(model: str) -> str | None:
    """Return the table's family of ``model`` (longest match, dated snapshots and organisations included), or None."""
    name = model.strip().lower()
    return _family_match(name) or (_family_match(name.rsplit("/", 1)[1]) if "/" in name else None)


def model_spec(model: str) -> ModelSpec:
    """Return the rules of ``model``; an unknown name gets conservative rules named after it."""
    family = family_of(model)
    if family is None:
        return ModelSpec(model, CONSERVATIVE_RULE, known=False)
    return MODELS[family]
