"""The offline teacher's image rules for teachers outside OpenAI, checked on literal worked examples.

Each expected figure is worked out by hand from the family's published rule (sources in
vqa_distill/offline_teacher/rules/vendor_images.py), so a wrong copy of a rule cannot pass by agreeing
with itself.
"""

from __future__ import annotations

import pytest

from vqa_distill.offline_teacher.rules import billing
from vqa_distill.offline_teacher.rules.vendor_images import (
    CLAUDE,
    GEMINI,
    GLM_4V,
    INTERNVL,
    QWEN_DASHSCOPE,
    QWEN_SELF_HOSTED,
    vendor_rule,
)


@pytest.mark.parametrize(
    ("width", "height", "resized", "expected"),
    [
        # round(640/28) = 23, round(480/28) = 17: 644x476 is within 1,280 tokens: 23 x 17 + 2
        (640, 480, (644, 476), 393),
        # 1036x1036 is over 1,003,520 px: beta = sqrt(1024^2 / 1,003,520) = 1.0222; floor(35.78) = 35
        (1024, 1024, (980, 980), 35 * 35 + 2),
        # beta = sqrt(12,000,000 / 1,003,520) = 3.4580: floor(41.31) = 41, floor(30.98) = 30
        (4000, 3000, (1148, 840), 41 * 30 + 2),
        # 1932x1092 is over: beta = 1.4375: floor(47.70) = 47, floor(26.83) = 26
        (1920, 1080, (1316, 728), 47 * 26 + 2),
        # 28x28 is 1 token, under the 4-token floor: beta = 2, so 56x56
        (28, 28, (56, 56), 4 + 2),
    ],
)
def test_qwen_vl_on_dashscope(width: int, height: int, resized: tuple[int, int], expected: int) -> None:
    assert QWEN_DASHSCOPE.resized(width, height) == resized
    for model in ("qwen-vl-max", "qwen-vl-plus", "qwen-vl-max-latest", "qwen2.5-vl-72b-instruct"):
        assert billing.image_tokens(model, width, height, "high") == expected
        assert billing.image_tokens(model, width, height, "low") == expected  # detail is ignored


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (384, 384, 258),  # both sides <= 384 px: one image of 258
        (200, 100, 258),
        (385, 100, 258),  # one side over 384: tiled, but one 768-px tile covers it
        (1024, 768, 2 * 258),  # 2 x 1 tiles
        (1920, 1080, 6 * 258),  # ceil(2.5) x ceil(1.41) = 3 x 2 tiles
        (4000, 3000, 24 * 258),  # 6 x 4 tiles
    ],
)
def test_gemini_2(width: int, height: int, expected: int) -> None:
    for model in ("gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro", "models/gemini-2.0-flash"):
        assert billing.image_tokens(model, width, height, "auto") == expected


@pytest.mark.parametrize(
    ("width", "height", "resized", "expected"),
    [
        (200, 200, (200, 200), 54),  # the vision page's examples: 40,000 / 750 = 53.3 -> ~54
        (1000, 1000, (1000, 1000), 1334),  # 1,333.3 -> ~1,334
        (1092, 1092, (1092, 1092), 1590),  # 1,589.95 -> ~1,590: under ~1,600 tokens, not resized
        # 12 MP: scale sqrt(1,200,000 / 12,000,000) = 0.31623 -> 1264.9 x 948.7, rounded down
        (4000, 3000, (1264, 948), 1598),  # 1,198,272 / 750 = 1,597.7
        # the long edge first: 1568 / 2000 = 0.784 -> 1568 x 392 = 614,656 px, under the area cap
        (2000, 500, (1568, 392), 820),
    ],
)
def test_claude(width: int, height: int, resized: tuple[int, int], expected: int) -> None:
    assert CLAUDE.resized(width, height) == resized
    for model in ("claude-3-5-sonnet-20241022", "claude-sonnet-4-20250514", "claude-3-haiku-20240307"):
        assert billing.image_tokens(model, width, height, "high") == expected


@pytest.mark.parametrize(("width", "height"), [(1, 1), (448, 448), (1120, 1120), (4000, 3000)])
def test_glm_4v_bills_every_image_alike(width: int, height: int) -> None:
    # resized to 1120x1120: 80x80 patches of 14 px, a 2x2 convolution: 40 x 40, + begin/end of image
    for model in ("glm-4v", "glm-4v-plus", "glm-4v-plus-0111"):
        assert billing.image_tokens(model, width, height, "high") == 1602


@pytest.mark.parametrize(
    ("width", "height", "resized", "expected"),
    [
        (1024, 1024, (1036, 1036), 37 * 37 + 2),  # round(36.57) = 37: 1,073,296 px is within 12,845,056
        (4000, 3000, (4004, 2996), 143 * 107 + 2),  # 11,995,984 px: still within the processor's default
        (1920, 1080, (1932, 1092), 69 * 39 + 2),
        (640, 480, (644, 476), 23 * 17 + 2),
    ],
)
def test_self_hosted_qwen2_5_vl(width: int, height: int, resized: tuple[int, int], expected: int) -> None:
    assert QWEN_SELF_HOSTED.resized(width, height) == resized
    for model in ("Qwen/Qwen2.5-VL-72B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"):
        assert billing.image_tokens(model, width, height, "high") == expected


@pytest.mark.parametrize(
    ("width", "height", "grid", "expected"),
    [
        (448, 448, (1, 1), 256 + 2),  # one tile, no thumbnail
        (100, 100, (1, 1), 256 + 2),  # small images are scaled up to one tile
        # aspect 1: 1x1, 2x2 and 3x3 tie; 1,048,576 px > half of 9 tiles (903,168): 3x3 + thumbnail
        (1024, 1024, (3, 3), 10 * 256 + 2),
        # aspect 1.78: 2x1 and 4x2 tie at 0.22 off; 2,073,600 px > half of 8 tiles: 4x2 + thumbnail
        (1920, 1080, (4, 2), 9 * 256 + 2),
        (4000, 3000, (4, 3), 13 * 256 + 2),  # aspect 4:3 exactly: 12 tiles + thumbnail
        (800, 600, (4, 3), 13 * 256 + 2),  # the same grid, the image scaled up
        (1000, 200, (5, 1), 6 * 256 + 2),  # aspect 5: 5x1 + thumbnail
    ],
)
def test_self_hosted_internvl2_5(width: int, height: int, grid: tuple[int, int], expected: int) -> None:
    assert INTERNVL.grid(width, height) == grid
    assert billing.image_tokens("OpenGVLab/InternVL2_5-78B", width, height, "low") == expected


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        ("qwen-vl-max", QWEN_DASHSCOPE),
        ("QWEN-VL-PLUS", QWEN_DASHSCOPE),
        ("qwen2.5-vl-7b-instruct", QWEN_DASHSCOPE),  # DashScope's own name for the open weights
        ("Qwen/Qwen2.5-VL-72B-Instruct", QWEN_SELF_HOSTED),  # a self-hosted server's name for them
        ("gemini-2.5-pro", GEMINI),
        ("claude-sonnet-4-20250514", CLAUDE),
        ("glm-4v-plus", GLM_4V),
        ("OpenGVLab/InternVL2_5-78B", INTERNVL),
        ("gpt-4o", None),
        ("gemini-1.5-pro", None),  # an older family with other rules: not modelled
        ("glm-4.1v-thinking", None),
        ("my-teacher", None),
    ],
)
def test_names_find_their_family(model: str, rule: object) -> None:
    assert vendor_rule(model) == rule


def test_openai_names_and_unknown_names_keep_openai_rules() -> None:
    assert billing.image_tokens("gpt-4o", 1024, 1024, "high") == 765
    assert billing.image_tokens("gpt-4.1-mini", 1024, 1024, "high") == 1659
    assert billing.image_tokens("my-teacher", 1024, 1024, "high") == 765  # the gpt-4o rule, as before


def test_a_rule_given_replaces_the_models_own() -> None:
    images = [(1024, 1024, "high")]
    assert billing.prompt_tokens("my-teacher", ["abcd"], images, QWEN_DASHSCOPE) == 1 + 1227
    assert billing.prompt_tokens("gpt-4o", [], images, GLM_4V) == 1602


def test_sizes_must_be_positive() -> None:
    for rule in (QWEN_DASHSCOPE, GEMINI, CLAUDE, GLM_4V, INTERNVL):
        with pytest.raises(ValueError):
            rule.tokens(0, 10)
