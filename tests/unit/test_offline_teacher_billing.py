"""The offline teacher's per-model token rules, checked against OpenAI's published worked examples."""

from __future__ import annotations

import pytest

from vqa_distill.offline_teacher.rules import billing
from vqa_distill.offline_teacher.rules.families import is_reasoning, model_family


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (1024, 1024, "high", 765),  # the vision guide's worked examples
        (2048, 4096, "high", 1105),
        (4096, 8192, "low", 85),
        (100, 100, "high", 255),  # small images are never scaled up: one tile
        (512, 512, "high", 255),
        (513, 512, "high", 425),  # just over one tile wide
        (1920, 1080, "high", 1105),  # -> 1365x768: 3x2 tiles
        (4000, 3000, "high", 765),  # -> 2048x1536 -> 1024x768: 2x2 tiles
        (1024, 1024, "auto", 765),  # auto is billed as high
        (10, 10, "low", 85),
    ],
)
def test_gpt_4o_tiles(width: int, height: int, detail: str, expected: int) -> None:
    assert billing.image_tokens("gpt-4o", width, height, detail) == expected


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (1024, 1024, "high", 25501),  # 4 tiles: 2,833 + 4 x 5,667
        (2048, 4096, "high", 36835),  # 6 tiles
        (320, 240, "high", 8500),  # 1 tile
        (4096, 8192, "low", 2833),
        (1024, 1024, "low", 2833),
    ],
)
def test_gpt_4o_mini_tiles_cost_many_more_tokens(width: int, height: int, detail: str, expected: int) -> None:
    assert billing.image_tokens("gpt-4o-mini", width, height, detail) == expected


@pytest.mark.parametrize(
    ("model", "high", "low"),
    [
        ("gpt-4o", 765, 85),
        ("gpt-4o-2024-08-06", 765, 85),
        ("chatgpt-4o-latest", 765, 85),
        ("gpt-4.1", 765, 85),
        ("gpt-4.1-2025-04-14", 765, 85),
        ("gpt-4o-mini-2024-07-18", 25501, 2833),
        ("gpt-5", 630, 70),
        ("gpt-5-2025-08-07", 630, 70),
        ("o1", 675, 75),
        ("o3", 675, 75),
        ("o3-2025-04-16", 675, 75),
        ("teacher-offline", 765, 85),  # unknown models: the gpt-4o rule
        ("some-future-model", 765, 85),
    ],
)
def test_tile_models_by_family(model: str, high: int, low: int) -> None:
    assert billing.image_tokens(model, 1024, 1024, "high") == high
    assert billing.image_tokens(model, 1024, 1024, "low") == low


@pytest.mark.parametrize(
    ("width", "height", "patches"),
    [
        (1024, 1024, 1024),  # the guide's first example: 32 x 32 patches, under the cap
        (1800, 2400, 1452),  # the guide's second example: shrunk to 1056x1408 = 33 x 44 patches
        (4000, 3000, 1452),  # the same aspect ratio on its side
        (1920, 1080, 1508),  # shrunk, then fitted to 52 x 29 patches
        (32, 32, 1),
        (33, 32, 2),  # a patch may extend beyond the image
        (1, 1, 1),
        (1536 * 32, 32, 1536),  # exactly at the cap: not shrunk
        (100_000, 20, 1536),  # extreme strips are capped
    ],
)
def test_patch_counts(width: int, height: int, patches: int) -> None:
    assert billing.patch_count(width, height) == patches


@pytest.mark.parametrize(
    ("model", "width", "height", "expected"),
    [
        ("gpt-4.1-mini", 1024, 1024, 1659),  # ceil(1024 x 1.62)
        ("gpt-4.1-mini", 1800, 2400, 2353),  # ceil(1452 x 1.62)
        ("gpt-4.1-mini-2025-04-14", 1024, 1024, 1659),
        ("gpt-5-mini", 1024, 1024, 1659),
        ("gpt-4.1-nano", 1024, 1024, 2520),  # ceil(1024 x 2.46)
        ("gpt-5-nano", 1800, 2400, 3572),  # ceil(1452 x 2.46)
        ("o4-mini", 1024, 1024, 1762),  # ceil(1024 x 1.72)
        ("o4-mini-2025-04-16", 1800, 2400, 2498),  # ceil(1452 x 1.72)
        ("gpt-4.1-mini", 320, 320, 162),  # 100 patches x 1.62 is exactly 162, whatever float says
    ],
)
def test_patch_models_apply_their_multiplier(model: str, width: int, height: int, expected: int) -> None:
    assert billing.image_tokens(model, width, height, "high") == expected
    assert billing.image_tokens(model, width, height, "low") == expected  # detail is ignored


def test_tiled_size_and_bad_inputs() -> None:
    assert billing.tiled_size(4000, 3000) == (1024, 768)
    assert billing.tiled_size(300, 200) == (300, 200)
    assert billing.tile_count(2048, 4096) == 6
    with pytest.raises(ValueError):
        billing.image_tokens("gpt-4o", 10, 10, "ultra")
    with pytest.raises(ValueError):
        billing.image_tokens("gpt-4o", 0, 10)
    with pytest.raises(ValueError):
        billing.patch_count(10, -1)


def test_text_tokens_prompt_tokens_and_truncation() -> None:
    assert [billing.text_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    images = [(1024, 1024, "high"), (10, 10, "low")]
    assert billing.prompt_tokens("gpt-4o", ["abcd", "abcdefgh"], images) == 1 + 2 + 765 + 85
    assert billing.prompt_tokens("gpt-4o-mini", ["abcd"], images) == 1 + 25501 + 2833
    assert billing.prompt_tokens("gpt-4.1-mini", ["abcd"], images) == 1 + 1659 + 2  # 10x10: 1 patch x 1.62
    assert billing.text_tokens(billing.truncate_to_tokens("x" * 100, 7)) == 7
    assert billing.truncate_to_tokens("short", 50) == "short"
    with pytest.raises(ValueError):
        billing.truncate_to_tokens("text", -1)


@pytest.mark.parametrize(
    ("model", "family", "reasoning"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", False),
        ("GPT-4o", "gpt-4o", False),
        ("o3-2025-04-16", "o3", True),
        ("o3-mini", "o3-mini", True),
        ("o1", "o1", True),
        ("o4-mini", "o4-mini", True),
        ("gpt-5", "gpt-5", True),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini", True),
        ("gpt-5-nano", "gpt-5-nano", True),
        ("gpt-5-chat-latest", "gpt-5-chat-latest", False),
        ("gpt-4.1-nano", "gpt-4.1-nano", False),
        ("teacher-offline", "teacher-offline", False),
    ],
)
def test_model_families(model: str, family: str, reasoning: bool) -> None:
    assert model_family(model) == family
    assert is_reasoning(model) is reasoning
