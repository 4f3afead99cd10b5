"""Families outside OpenAI against their providers' published rules: image tokens, sizes sent, parameters, names.

Every expected number is worked out by hand from the published rule (the arithmetic is in the comment
beside it), never read back from the table under test.
"""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from vqa_distill.teacher.endpoint import body
from vqa_distill.teacher.endpoint.body import request_options
from vqa_distill.teacher.endpoint.models import family_of, model_spec
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.run.resources import PreparedImages

DEFAULT_MAX_PIXELS = 1536 * 1536

# ----------------------------------------------------------------------------- image tokens


@pytest.mark.parametrize(
    ("model", "width", "height", "expected"),
    [
        # Qwen-VL at DashScope: sides rounded to multiples of 28 (37 x 27 of them), one token each, + 2 markers.
        ("qwen-vl-max", 1024, 768, 37 * 27 + 2),  # 1036x756 = 783,216 px, within 1,280 tokens
        # 4000x3000 rounds to 4004x2996, over 1280*784 px: beta = sqrt(12e6/1,003,520) = 3.458,
        # floor(3000/3.458/28) = 30 and floor(4000/3.458/28) = 41 multiples: 1148x840.
        ("qwen-vl-plus", 4000, 3000, 41 * 30 + 2),
        ("qwen2.5-vl-72b-instruct", 56, 56, 4 + 2),  # 2 x 2 multiples: the minimum of 4 tokens
        # Self-hosted Qwen2.5-VL: the same 28-px rule within 12,845,056 px (16,384 tokens).
        ("Qwen/Qwen2.5-VL-72B-Instruct", 1024, 768, 37 * 27 + 2),
        ("Qwen/Qwen2.5-VL-72B-Instruct", 4000, 3000, 143 * 107 + 2),  # 4004x2996 fits 12.8 MP
        # Gemini 2.x: 258 when both sides are <= 384, else 258 per 768-px tile.
        ("gemini-2.5-flash", 1024, 1024, 4 * 258),  # 2 x 2 tiles = 1,032
        ("gemini-2.0-flash", 300, 300, 258),
        ("gemini-2.0-flash", 384, 384, 258),
        ("gemini-2.5-pro", 1600, 900, 3 * 2 * 258),  # ceil(1600/768) = 3, ceil(900/768) = 2
        # Claude: fitted to 1,568 px and 1.15 MP, then w*h/750 rounded up.
        # 1568x1568 is 2.46 MP: scale sqrt(1.15e6/2,458,624) = 0.6839 -> 1072x1072 = 1,149,184 px / 750 = 1532.2.
        ("claude-sonnet-4-5", 1568, 1568, 1533),
        ("claude-3-5-haiku-20241022", 1000, 1000, 1334),  # 1,000,000 / 750 = 1333.3, unchanged size
        ("claude-opus-4-1", 3000, 500, 546),  # long edge: 1568x261 = 409,248 px / 750 = 545.7
        # InternVL: the 448-px grid of the image's shape (4 x 3 for 4:3), + a thumbnail, 256 tokens each, + 2.
        ("OpenGVLab/InternVL3-78B", 1024, 768, (12 + 1) * 256 + 2),
        ("OpenGVLab/InternVL2_5-78B-MPO", 1000, 1000, (9 + 1) * 256 + 2),  # 3 x 3: fills more than half of 9 tiles
        ("OpenGVLab/InternVL2_5-8B", 448, 448, 256 + 2),  # one tile, no thumbnail
        # GLM-4V resizes every image to 1120x1120: 40 x 40 tokens + 2.
        ("glm-4v-plus", 4000, 3000, 1602),
        ("glm-4v", 100, 100, 1602),
        # GLM-4.5V: Qwen's arithmetic with its own budget (1036x756 as for Qwen).
        ("glm-4.5v", 1024, 768, 37 * 27 + 2),
    ],
)
def test_image_tokens_follow_each_published_rule(model: str, width: int, height: int, expected: int) -> None:
    assert model_spec(model).image_tokens(width, height, "high") == expected


def test_detail_changes_nothing_outside_openai_tiles() -> None:
    for model in ("qwen-vl-max", "gemini-2.5-flash", "claude-sonnet-4", "OpenGVLab/InternVL3-8B", "glm-4v"):
        spec = model_spec(model)
        assert spec.image_tokens(1024, 768, "low") == spec.image_tokens(1024, 768, "high")


# ----------------------------------------------------------------------------- what is sent


@pytest.mark.parametrize(
    ("model", "size", "sent"),
    [
        ("qwen-vl-max", (1024, 768), (1036, 756)),  # the size Qwen resizes to: multiples of 28
        ("qwen-vl-max", (4000, 3000), (1148, 840)),  # within 1,280 tokens, not the run's 1536^2
        # Self-hosted: 12.8 MP allowed, so the run's budget binds: beta = sqrt(12e6 / 2,359,296) = 2.2553,
        # floor(4000/2.2553/28) = 63 and floor(3000/2.2553/28) = 47 multiples.
        ("Qwen/Qwen2.5-VL-7B-Instruct", (4000, 3000), (63 * 28, 47 * 28)),
        ("claude-sonnet-4", (4000, 3000), (1238, 928)),  # 1.15 MP: scale 0.30957
        ("claude-sonnet-4", (3000, 500), (1568, 261)),  # the long edge binds first
        ("glm-4v", (4000, 3000), (1120, 840)),  # never a side longer than the square it becomes
        ("gpt-4o-mini", (4000, 3000), (1773, 1330)),  # OpenAI: the run's budget, as before
        ("gemini-2.5-flash", (4000, 3000), (1773, 1330)),  # every pixel is billed in tiles: the run's budget
        ("OpenGVLab/InternVL3-8B", (4000, 3000), (1773, 1330)),  # under 12 tiles' 2.4 MP
    ],
)
def test_images_are_prepared_to_the_size_the_family_keeps(
    model: str, size: tuple[int, int], sent: tuple[int, int]
) -> None:
    assert model_spec(model).budget(DEFAULT_MAX_PIXELS).target(*size) == sent


def test_what_is_sent_to_qwen_is_billed_exactly_as_estimated() -> None:
    """Sent at Qwen's own size, the image is not resized again: its tokens are those of the size sent."""
    spec = model_spec("qwen-vl-max")
    for size in ((4032, 3024), (1920, 1080), (640, 480), (300, 4000)):
        sent = spec.budget(DEFAULT_MAX_PIXELS).target(*size)
        assert sent[0] % 28 == 0 and sent[1] % 28 == 0
        assert sent[0] * sent[1] <= 1280 * 28 * 28
        assert spec.image_tokens(*sent) == spec.image_tokens(*size) == sent[0] * sent[1] // 784 + 2


def test_a_smaller_run_budget_still_wins() -> None:
    assert model_spec("qwen-vl-max").budget(512 * 512).target(4000, 3000) == (588, 420)  # 21 x 15 multiples
    assert model_spec("claude-sonnet-4").budget(512 * 512).target(4000, 3000) == (591, 443)


def test_pixel_budget_rejects_empty_images() -> None:
    with pytest.raises(ValueError, match="positive"):
        PixelBudget(1000).target(0, 10)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("qwen-vl-max", "qwen-vl-max"),
        ("qwen-vl-max-latest", "qwen-vl-max"),
        ("qwen-vl-plus-2025-01-25", "qwen-vl-plus"),
        ("qwen2.5-vl-72b-instruct", "qwen2.5-vl"),  # DashScope's name: DashScope's budget
        ("Qwen/Qwen2.5-VL-72B-Instruct", "qwen/qwen2.5-vl"),  # as vLLM and SGLang name it: the model's own
        ("Qwen/Qwen2.5-VL-7B-Instruct-AWQ", "qwen/qwen2.5-vl"),
        ("OpenGVLab/InternVL3-78B", "internvl3"),
        ("OpenGVLab/InternVL2_5-78B-MPO", "internvl2_5"),
        ("OpenGVLab/InternVL3_5-241B-A28B", "internvl3_5"),
        ("gemini-2.5-flash", "gemini-2.5"),
        ("gemini-2.5-flash-lite", "gemini-2.5"),
        ("google/gemini-2.0-flash-001", "gemini-2.0"),  # a relay's name with the provider first
        ("claude-sonnet-4-5-20250929", "claude"),
        ("anthropic/claude-3.5-sonnet", "claude"),
        ("glm-4v-plus-0111", "glm-4v"),
        ("zai-org/GLM-4.5V", "glm-4.5v"),
    ],
)
def test_names_as_providers_and_servers_spell_them(model: str, family: str) -> None:
    assert family_of(model) == family
    assert model_spec(model).known and model_spec(model).price is None  # no price: regions and tiers differ


@pytest.mark.parametrize("model", ["qwen-vl", "gemini-1.5-pro", "llava-hf/llava-1.5-7b-hf", "internvl", "glm-4"])
def test_names_the_table_does_not_know(model: str) -> None:
    assert family_of(model) is None and not model_spec(model).known


# ----------------------------------------------------------------------------- parameters


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which once-per-process warnings were given, so this test sees its own."""
    monkeypatch.setattr(body, "_WARNED", set())


@pytest.mark.usefixtures("fresh_warnings")
def test_claude_takes_temperature_up_to_1_and_no_reasoning_effort(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vqa_distill.teacher")
    params = {"max_tokens": 300, "temperature": 1.5, "reasoning_effort": "high"}
    assert request_options(model_spec("claude-sonnet-4"), params) == {"max_tokens": 300, "temperature": 1.0}
    assert request_options(model_spec("claude-sonnet-4"), {"temperature": 0.3}) == {"temperature": 0.3}
    said = [r.getMessage() for r in caplog.records]
    assert "claude takes temperature up to 1: sent 1 instead of 1.5" in said
    assert "claude takes no reasoning_effort (reasoning models only): sent without it" in said


@pytest.mark.usefixtures("fresh_warnings")
def test_claude_is_warned_once_that_it_ignores_response_format(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vqa_distill.teacher")
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    for _ in range(3):
        assert request_options(model_spec("claude-haiku-4-5"), {"response_format": schema}) == {"response_format": schema}
    assert sum("ignores response_format" in r.getMessage() for r in caplog.records) == 1


def test_gemini_2_5_takes_reasoning_effort_and_temperature() -> None:
    params = {"max_tokens": 300, "temperature": 0.2, "reasoning_effort": "minimal"}
    assert request_options(model_spec("gemini-2.5-flash"), params) == {
        "max_tokens": 300, "temperature": 0.2, "reasoning_effort": "low",  # no "minimal" on 2.5: the next one up
    }  # fmt: skip
    assert "reasoning_effort" not in request_options(model_spec("gemini-2.0-flash"), params)


def test_self_hosted_and_dashscope_models_are_chat_models() -> None:
    for model in ("Qwen/Qwen2.5-VL-72B-Instruct", "qwen-vl-max", "OpenGVLab/InternVL3-78B", "glm-4.5v"):
        options = request_options(model_spec(model), {"max_tokens": 64, "temperature": 0.7})
        assert options["max_tokens"] == 64 and options["temperature"] == 0.7


# ----------------------------------------------------------------------------- prepared images


def test_each_model_gets_the_image_at_its_own_size(tmp_path: Path) -> None:
    """One photo, asked of Qwen and judged by gpt-4o-mini: prepared once per family, each at its own size."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (2000, 1500), (90, 120, 30)).save(photo, quality=80)
    sha = "0" * 64

    def request(model: str) -> TeacherRequest:
        return TeacherRequest(
            image_path=str(photo), rel_path="photo.jpg", sha256=sha, prompt="Describe.", system=None, model=model,
            params={"detail": "auto", "max_pixels": DEFAULT_MAX_PIXELS, "max_tokens": 50},
        )  # fmt: skip

    async def both() -> tuple[PreparedImage, PreparedImage, PreparedImage]:
        images = PreparedImages(capacity=4, workers=1)
        try:
            return (
                await images.get(request("qwen-vl-max")),
                await images.get(request("gpt-4o-mini")),
                await images.get(request("qwen-vl-max-latest")),
            )
        finally:
            images.close()

    qwen, openai_size, again = asyncio.run(both())
    # 2000x1500 rounds to 1988x1512, over 1280 tokens: beta = sqrt(3e6/1,003,520) = 1.729,
    # floor(2000/1.729/28) = 41 and floor(1500/1.729/28) = 30 multiples.
    assert (qwen.width, qwen.height) == (1148, 840)
    assert Image.open(io.BytesIO(qwen.jpeg)).size == (1148, 840)
    assert (openai_size.width, openai_size.height) == (1773, 1330)  # 1536^2 px at 4:3, as before
    assert again is qwen  # one family, one preparation
