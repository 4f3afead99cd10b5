"""The model table against OpenAI's published figures: image tokens, parameters, prices, name matching.

Every expected number is a literal from OpenAI's vision guide or pricing page (or worked out by hand
from them), never read back from the table under test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vqa_distill.teacher.endpoint import body
from vqa_distill.teacher.endpoint.client import estimate_tokens, request_options
from vqa_distill.teacher.endpoint.models import family_of, model_spec, patch_count, tile_count
from vqa_distill.teacher.endpoint.pricing import estimate_cost, price_of
from vqa_distill.teacher.endpoint.request import TeacherRequest, request_key
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.params import TeacherParams

# ----------------------------------------------------------------------------- image tokens


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (1024, 1024, "high", 765),  # vision guide: 4 tiles, 85 + 4*170
        (2048, 4096, "high", 1105),  # vision guide: scaled to 768x1536, 6 tiles
        (4096, 8192, "high", 1105),  # same aspect ratio, larger: same tiles
        (1024, 1024, "low", 85),
        (4000, 3000, "low", 85),
        (10, 10, "low", 85),
        (512, 512, "high", 255),  # one tile, never upscaled
        (1024, 1024, "auto", 765),  # auto estimated as high, the larger
    ],
)
def test_gpt_4o_tiles_match_openai_worked_examples(width: int, height: int, detail: str, expected: int) -> None:
    assert model_spec("gpt-4o").image_tokens(width, height, detail) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (1024, 1024, "high", 25_501),  # 2,833 + 4 * 5,667
        (2048, 4096, "high", 36_835),  # 2,833 + 6 * 5,667
        (1024, 1024, "low", 2_833),
        (4000, 3000, "low", 2_833),
        (512, 512, "high", 8_500),  # 2,833 + 5,667
    ],
)
def test_gpt_4o_mini_bills_the_same_tiles_at_its_own_rates(width: int, height: int, detail: str, expected: int) -> None:
    assert model_spec("gpt-4o-mini").image_tokens(width, height, detail) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4.1", 765),  # 85 + 4*170
        ("chatgpt-4o-latest", 765),
        ("gpt-5", 630),  # 70 + 4*140
        ("o1", 675),  # 75 + 4*150
        ("o3", 675),
    ],
)
def test_other_tile_families_at_1024_square(model: str, expected: int) -> None:
    assert model_spec(model).image_tokens(1024, 1024, "high") == expected


@pytest.mark.parametrize(("model", "low"), [("gpt-5", 70), ("o3", 75), ("gpt-4.1", 85)])
def test_low_detail_is_the_base_of_each_tile_family(model: str, low: int) -> None:
    assert model_spec(model).image_tokens(3000, 2000, "low") == low


def test_tile_counts_follow_the_scaling_steps() -> None:
    assert tile_count(1024, 1024) == 4  # shortest side to 768: 768x768
    assert tile_count(2048, 4096) == 6  # fit 2048: 1024x2048, shortest 768: 768x1536
    assert tile_count(4000, 3000) == 4  # 1024x768 after both steps: 2 x 2
    assert tile_count(300, 200) == 1  # small images are not scaled up


def test_patch_counts_match_openai_worked_examples() -> None:
    assert patch_count(1024, 1024) == 1024  # 32 x 32 patches, under the 1,536 budget
    assert patch_count(1800, 2400) == 1452  # shrunk to 1056x1408: 33 x 44 patches
    assert patch_count(100, 100) == 16  # ceil(100/32) = 4 per side
    assert patch_count(4000, 3000) == 1452  # the same 4:3 shape as the example: 44 x 33
    assert patch_count(4032, 3024) == 1452  # a 12 MP phone photo
    assert patch_count(100_000, 10) <= 1536  # a sliver does not break the scaling


@pytest.mark.parametrize(
    ("model", "width", "height", "expected"),
    [
        ("gpt-4.1-mini", 1024, 1024, 1659),  # ceil(1024 * 1.62) = ceil(1658.88)
        ("gpt-5-mini", 1024, 1024, 1659),
        ("gpt-4.1-nano", 1024, 1024, 2520),  # ceil(1024 * 2.46) = ceil(2519.04)
        ("gpt-5-nano", 1024, 1024, 2520),
        ("o4-mini", 1024, 1024, 1762),  # ceil(1024 * 1.72) = ceil(1761.28)
        ("gpt-4.1-mini", 1800, 2400, 2353),  # ceil(1452 * 1.62) = ceil(2352.24)
        ("gpt-4.1-mini", 320, 320, 162),  # 100 patches * 1.62 is exactly 162, not 163
    ],
)
def test_patch_families_multiply_the_patches(model: str, width: int, height: int, expected: int) -> None:
    assert model_spec(model).image_tokens(width, height, "high") == expected


def test_patch_families_ignore_detail() -> None:
    spec = model_spec("gpt-4.1-mini")
    assert spec.image_tokens(1024, 1024, "low") == spec.image_tokens(1024, 1024, "high") == 1659


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        model_spec("gpt-4o").image_tokens(0, 10)
    with pytest.raises(ValueError, match="positive"):
        model_spec("gpt-4.1-mini").image_tokens(10, -1)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
        ("gpt-5-chat-latest", "gpt-5-chat-latest"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("o1-2024-12-17", "o1"),
    ],
)
def test_names_match_their_family_longest_first(model: str, family: str) -> None:
    assert family_of(model) == family
    assert model_spec(model).known


@pytest.mark.parametrize("model", ["my-azure-deployment", "gpt-4", "llava-1.6", "gpt-4omini", "o2"])
def test_unknown_models_get_the_most_expensive_image_rule(model: str) -> None:
    spec = model_spec(model)
    assert family_of(model) is None and not spec.known
    assert spec.image_tokens(1024, 1024, "high") == 25_501  # gpt-4o-mini's figures, the most per image
    assert spec.image_tokens(1024, 1024, "low") == 2_833
    assert spec.output_cap_parameter == "max_tokens" and spec.accepts_temperature and not spec.efforts
    assert spec.price is None and price_of(model) is None and estimate_cost(model, 10, 10) is None


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("model", "cap", "temperature", "efforts"),
    [
        ("gpt-4o-mini", "max_tokens", True, ()),
        ("gpt-4o", "max_tokens", True, ()),
        ("gpt-4.1-nano", "max_tokens", True, ()),
        ("gpt-5", "max_completion_tokens", False, ("minimal", "low", "medium", "high")),
        ("gpt-5-mini", "max_completion_tokens", False, ("minimal", "low", "medium", "high")),
        ("gpt-5-nano", "max_completion_tokens", False, ("minimal", "low", "medium", "high")),
        ("o1", "max_completion_tokens", False, ("low", "medium", "high")),
        ("o3", "max_completion_tokens", False, ("low", "medium", "high")),
        ("o3-mini", "max_completion_tokens", False, ("low", "medium", "high")),
        ("o4-mini", "max_completion_tokens", False, ("low", "medium", "high")),
    ],
)
def test_parameter_rules_per_family(model: str, cap: str, temperature: bool, efforts: tuple[str, ...]) -> None:
    spec = model_spec(model)
    assert spec.output_cap_parameter == cap
    assert spec.accepts_temperature is temperature
    assert spec.efforts == efforts


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which once-per-process warnings were given, so this test sees its own."""
    monkeypatch.setattr(body, "_WARNED", set())


@pytest.mark.usefixtures("fresh_warnings")
def test_reasoning_request_options_drop_what_the_model_refuses(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vqa_distill.teacher")
    params = {"detail": "auto", "max_pixels": 100, "max_tokens": 300, "temperature": 0.2, "reasoning_effort": "low"}
    assert request_options(model_spec("o4-mini"), params) == {"max_completion_tokens": 300, "reasoning_effort": "low"}
    assert request_options(model_spec("o4-mini"), params) == {"max_completion_tokens": 300, "reasoning_effort": "low"}
    warnings = [r.getMessage() for r in caplog.records if "temperature" in r.getMessage()]
    assert warnings == ["o4-mini does not accept temperature: sent without it"]  # once per process


@pytest.mark.usefixtures("fresh_warnings")
def test_chat_request_options_keep_temperature_and_drop_reasoning_effort(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vqa_distill.teacher")
    params = {"max_tokens": 50, "temperature": 0.0, "reasoning_effort": "high"}
    assert request_options(model_spec("gpt-4.1"), params) == {"max_tokens": 50, "temperature": 0.0}
    assert any("gpt-4.1 takes no reasoning_effort" in r.getMessage() for r in caplog.records)


def test_minimal_effort_becomes_low_for_the_o_series() -> None:
    assert request_options(model_spec("o3"), {"reasoning_effort": "minimal"}) == {"reasoning_effort": "low"}
    assert request_options(model_spec("gpt-5-nano"), {"reasoning_effort": "minimal"}) == {"reasoning_effort": "minimal"}


def test_nothing_optional_is_sent_when_unset() -> None:
    assert request_options(model_spec("gpt-5"), {"detail": "low", "max_pixels": 10}) == {}


def test_estimate_uses_the_models_image_rule() -> None:
    request = TeacherRequest(
        image_path="/x.jpg", rel_path="x.jpg", sha256="0" * 64, prompt="abcdefgh", system="abcd",
        model="gpt-4o-mini-2024-07-18", params={"detail": "auto", "max_pixels": 10, "max_tokens": 100},
    )  # fmt: skip
    image = PreparedImage(width=1024, height=1024, original_width=4000, original_height=4000, data_url="")
    assert estimate_tokens(request, image) == 25_501 + 2 + 1 + 100
    patch_request = request.model_copy(update={"model": "gpt-4.1-mini"})
    assert estimate_tokens(patch_request, image) == 1_659 + 2 + 1 + 100


# ----------------------------------------------------------------------------- prices and keys


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini", (0.15, 0.60)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
        ("gpt-4o", (2.50, 10.00)),
        ("gpt-4o-2024-08-06", (2.50, 10.00)),
        ("gpt-4.1", (2.00, 8.00)),
        ("gpt-4.1-mini", (0.40, 1.60)),
        ("gpt-4.1-nano", (0.10, 0.40)),
        ("gpt-5", (1.25, 10.00)),
        ("gpt-5-mini", (0.25, 2.00)),
        ("gpt-5-nano", (0.05, 0.40)),
        ("o3", (2.00, 8.00)),
        ("o4-mini", (1.10, 4.40)),
    ],
)
def test_list_prices(model: str, price: tuple[float, float]) -> None:
    assert price_of(model) == pytest.approx(price)


def test_batch_price_is_half_and_costs_add_up() -> None:
    assert price_of("gpt-4o-mini", batch=True) == pytest.approx((0.075, 0.30))
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == pytest.approx(0.375)
    assert estimate_cost("gpt-5", 25_501, 200) == pytest.approx(0.033876)  # 25501*1.25e-6 + 200*10e-6


def test_content_key_is_unchanged_for_existing_runs() -> None:
    """Keys of requests made before reasoning_effort existed: literal hashes, so a change shows."""
    defaults = TeacherParams(images="i", out="o", prompts=["Describe the defects."]).generation_params()
    assert defaults == {"detail": "auto", "max_pixels": 2359296, "max_tokens": 1024}
    key = request_key(sha256="0" * 64, prompt="Describe the defects.", system=None, model="gpt-4o-mini", params=defaults)
    assert key == "c9b2db10467c14a52a865e09c569ce849194a10e991a63b8e68d10013c5210b0"
    tuned = TeacherParams(images="i", out="o", prompts=["x"], temperature=0.2, max_tokens=300, detail="low")
    key = request_key(
        sha256="0" * 64, prompt="Describe the defects.", system="Be brief.", model="gpt-4o",
        params=tuned.generation_params(),
    )  # fmt: skip
    assert key == "5421101566b7f48ca2fec882e520baa765c3012b63ab027bfc673dc6f96b05db"


def test_reasoning_effort_joins_the_key_only_when_set() -> None:
    with_effort = TeacherParams(images="i", out="o", prompts=["x"], reasoning_effort="low").generation_params()
    assert with_effort["reasoning_effort"] == "low"
    without = TeacherParams(images="i", out="o", prompts=["x"]).generation_params()
    assert "reasoning_effort" not in without
    keys = {
        request_key(sha256="0" * 64, prompt="x", system=None, model="o3", params=params)
        for params in (with_effort, without)
    }
    assert len(keys) == 2


def test_params_validate_the_new_fields() -> None:
    from pydantic import ValidationError

    params = TeacherParams(images="i", out="o")
    assert params.reasoning_effort is None and params.max_retry_after == 60.0
    with pytest.raises(ValidationError):
        TeacherParams(images="i", out="o", reasoning_effort="extreme")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TeacherParams(images="i", out="o", max_retry_after=-1)


def test_cli_flags_and_config_keys_reach_the_params(tmp_path: Path) -> None:
    import argparse

    from vqa_distill.cli.teacher import add_generate_arguments, params_from_args

    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    flags = ["--images", "i", "--out", "o", "--prompt", "x", "--reasoning-effort", "low", "--max-retry-after", "5"]
    params = params_from_args(parser.parse_args(flags))
    assert params.reasoning_effort == "low" and params.max_retry_after == 5.0
    config = tmp_path / "teacher.toml"
    config.write_text('images = "i"\nout = "o"\nreasoning-effort = "high"\nmax_retry_after = 0\n', encoding="utf-8")
    params = params_from_args(parser.parse_args(["--config", str(config), "--prompt", "x"]))
    assert params.reasoning_effort == "high" and params.max_retry_after == 0.0
