"""Chat completions, usage, models and refusals of the offline teacher, through the real ``openai`` client."""

from __future__ import annotations

import math
from typing import Any

import httpx
import openai
import pytest

from tests.support.offline_teacher_helpers import (
    async_client,
    data_url,
    encode,
    picture,
    picture_url,
    sync_client,
    text_messages,
    vision_messages,
)
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server

MODEL = "gpt-4o-mini"
PROMPT = "Describe it."  # 12 characters: 3 prompt tokens


@pytest.fixture
def server(teacher: Any) -> TeacherServerHandle:
    """The session's key-protected server, reset for this test."""
    assert isinstance(teacher, TeacherServerHandle)
    return teacher


@pytest.fixture(scope="module")
def jpeg_url() -> str:
    return picture_url()


@pytest.fixture(scope="module")
def square_url() -> str:
    return picture_url((1024, 1024))


# ----------------------------------------------------------------------------- answers and usage


async def test_answers_are_deterministic_and_depend_on_image_and_prompt(
    server: TeacherServerHandle, jpeg_url: str
) -> None:
    async with async_client(server) as client:

        async def ask(url: str, prompt: str, system: str | None = None) -> str:
            completion = await client.chat.completions.create(
                model=MODEL, messages=vision_messages(url, prompt, system=system)
            )
            assert completion.choices[0].finish_reason == "stop"
            return completion.choices[0].message.content or ""

        first = await ask(jpeg_url, "Describe the defects.")
        assert first == await ask(jpeg_url, "Describe the defects.")
        assert 40 <= len(first.split()) <= 80, first
        assert "320x240" in first and "Describe the defects" in first
        assert await ask(jpeg_url, "What colour is it?") != first
        assert await ask(picture_url(colour=(30, 160, 60)), "Describe the defects.") != first
        terse = await ask(jpeg_url, "Describe the defects.", system="You are terse.")
        assert terse == await ask(jpeg_url, "Describe the defects.", system="You are terse.")


@pytest.mark.parametrize(
    ("model", "detail", "prompt_tokens"),
    [
        ("gpt-4o", "high", 768),  # 85 + 4 x 170 + 3
        ("gpt-4o", "low", 88),  # 85 + 3
        ("gpt-4o-mini", "high", 25504),  # 2,833 + 4 x 5,667 + 3
        ("gpt-4o-mini", "low", 2836),  # 2,833 + 3
        ("gpt-4.1", "high", 768),
        ("gpt-4.1-mini", "high", 1662),  # ceil(1,024 patches x 1.62) + 3
        ("gpt-4.1-mini", "low", 1662),  # patch models ignore detail
        ("gpt-4.1-nano", "high", 2523),  # ceil(1,024 x 2.46) + 3
        ("gpt-5", "high", 633),  # 70 + 4 x 140 + 3
        ("gpt-5-mini", "auto", 1662),
        ("o3", "high", 678),  # 75 + 4 x 150 + 3
        ("o4-mini", "high", 1765),  # ceil(1,024 x 1.72) + 3
        ("teacher-offline", "high", 768),  # unknown to OpenAI: the gpt-4o rule
    ],
)
async def test_usage_follows_each_models_rule(
    server: TeacherServerHandle, square_url: str, model: str, detail: str, prompt_tokens: int
) -> None:
    async with async_client(server) as client:
        completion = await client.chat.completions.create(
            model=model, messages=vision_messages(square_url, PROMPT, detail)
        )
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == prompt_tokens
    content = completion.choices[0].message.content or ""
    assert usage.completion_tokens == math.ceil(len(content) / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert completion.object == "chat.completion" and completion.model == model and completion.id
    assert server.stats()["requests"][0]["prompt_tokens"] == prompt_tokens


@pytest.mark.parametrize(
    ("size", "detail", "prompt_tokens"),
    [
        ((320, 240), "high", 8513),  # 1 tile: 2,833 + 5,667; system 5 + prompt 8 text tokens
        ((1600, 1200), "high", 25514),  # -> 1024x768: 4 tiles
        ((1600, 1200), "low", 2846),
    ],
)
async def test_system_and_prompt_text_count_too(
    server: TeacherServerHandle, size: tuple[int, int], detail: str, prompt_tokens: int
) -> None:
    system, prompt = "You inspect parts.", "List every scratch you can see."
    async with async_client(server) as client:
        completion = await client.chat.completions.create(
            model=MODEL, messages=vision_messages(picture_url(size), prompt, detail, system)
        )
    assert completion.usage is not None and completion.usage.prompt_tokens == prompt_tokens


async def test_patch_example_from_the_vision_guide(server: TeacherServerHandle) -> None:
    async with async_client(server) as client:
        completion = await client.chat.completions.create(
            model="gpt-4.1-mini", messages=vision_messages(picture_url((1800, 2400)), prompt=None)
        )
    assert completion.usage is not None and completion.usage.prompt_tokens == 2353  # ceil(1,452 x 1.62)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("gpt-4o-mini", {"max_tokens": 5}),
        ("gpt-4o-mini", {"max_completion_tokens": 5}),
        ("gpt-4o", {"max_tokens": 5, "temperature": 0.2}),
        ("o4-mini", {"max_completion_tokens": 5, "reasoning_effort": "low"}),
        ("gpt-5", {"max_completion_tokens": 5, "reasoning_effort": "minimal", "temperature": 1}),
    ],
)
async def test_the_output_cap_truncates_with_finish_reason_length(
    server: TeacherServerHandle, jpeg_url: str, model: str, extra: dict[str, Any]
) -> None:
    async with async_client(server) as client:
        completion = await client.chat.completions.create(
            model=model, messages=vision_messages(jpeg_url), extra_body=extra
        )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert len(completion.choices[0].message.content or "") == 20  # 5 tokens of 4 characters


def test_fingerprint_is_of_pixels_not_bytes(server: TeacherServerHandle) -> None:
    image = picture((200, 150))
    with sync_client(server) as client:
        for level in (1, 9):  # same pixels, different PNG bytes
            url = data_url(encode(image, "PNG", compress_level=level), "image/png")
            client.chat.completions.create(model=MODEL, messages=vision_messages(url))
    records = server.stats()["requests"]
    assert len(records) == 2 and records[0]["fingerprints"] == records[1]["fingerprints"]
    assert len(records[0]["fingerprints"][0]) == 64 and records[0]["image_sizes"] == ["200x150"]


# ----------------------------------------------------------------------------- parameter rules


@pytest.mark.parametrize(
    ("model", "extra", "error"),
    [
        (
            "o3",
            {"max_tokens": 50},
            {
                "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "unsupported_parameter",
            },
        ),
        (
            "gpt-5-mini",
            {"temperature": 0.2},
            {
                "message": "Unsupported value: 'temperature' does not support 0.2 with this model. "
                "Only the default (1) value is supported.",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "unsupported_value",
            },
        ),
        (
            "o4-mini",
            {"temperature": 0},
            {
                "message": "Unsupported value: 'temperature' does not support 0 with this model. "
                "Only the default (1) value is supported.",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "unsupported_value",
            },
        ),
        (
            "gpt-5",
            {"reasoning_effort": "extreme"},
            {
                "message": "Invalid value: 'extreme'. Supported values are: "
                "'minimal', 'low', 'medium', and 'high'.",
                "type": "invalid_request_error",
                "param": "reasoning_effort",
                "code": "invalid_value",
            },
        ),
        (
            "gpt-4o",
            {"reasoning_effort": "low"},
            {
                "message": "Unrecognized request argument supplied: reasoning_effort",
                "type": "invalid_request_error",
                "param": "reasoning_effort",
                "code": "unsupported_parameter",
            },
        ),
    ],
    ids=["o3-max_tokens", "gpt-5-mini-temperature", "o4-mini-temperature-0", "gpt-5-effort", "gpt-4o-effort"],
)
async def test_parameters_a_model_refuses_are_400_in_the_apis_words(
    server: TeacherServerHandle, model: str, extra: dict[str, Any], error: dict[str, Any]
) -> None:
    async with async_client(server) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=model, messages=text_messages("hi"), extra_body=extra)
    assert caught.value.status_code == 400
    assert caught.value.body == error
    assert (caught.value.code, caught.value.param) == (error["code"], error["param"])
    assert server.stats()["requests"][0]["status"] == 400


# ----------------------------------------------------------------------------- models and keys


async def test_models_are_listed_and_retrieved(server: TeacherServerHandle) -> None:
    async with async_client(server) as client:
        listed = [m.id async for m in client.models.list()]
        assert listed == [
            "gpt-4o-mini",
            "gpt-4o",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "o3",
            "o4-mini",
            "teacher-offline",
        ]
        model = await client.models.retrieve("o4-mini")
        assert (model.id, model.object, model.owned_by) == ("o4-mini", "model", "vqa-distill")
        assert model.created == 1_700_000_000
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("gpt-9-vision")
    not_found = {
        "message": "The model 'gpt-9-vision' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    assert caught.value.status_code == 404 and caught.value.body == not_found
    async with async_client(server) as client:
        with pytest.raises(openai.NotFoundError) as chat_caught:
            await client.chat.completions.create(model="gpt-9-vision", messages=text_messages("hi"))
    assert chat_caught.value.body == not_found


async def test_wrong_key_is_refused_everywhere_without_echoing_it(
    server: TeacherServerHandle, jpeg_url: str
) -> None:
    wrong = "sk-wrong-key-0123456789abcdef"
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=wrong, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
        with pytest.raises(openai.AuthenticationError):
            await bad.models.retrieve("gpt-4o")
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert server.api_key is not None
    assert wrong not in caught.value.response.text and server.api_key not in caught.value.response.text
    assert httpx.get(f"{server.root_url}/_admin/stats").status_code == 401  # admin needs the key too
    assert httpx.get(f"{server.base_url}/models").status_code == 401  # no key at all
    assert server.stats()["requests"][0]["status"] == 401


def test_any_key_is_accepted_when_none_is_configured(jpeg_url: str) -> None:
    with (
        running_teacher_server(models=["teacher-offline"]) as open_server,
        sync_client(open_server) as client,
    ):
        completion = client.chat.completions.create(
            model="teacher-offline", messages=vision_messages(jpeg_url)
        )
        assert completion.choices[0].message.content
        assert [m.id for m in client.models.list()] == ["teacher-offline"]
        raw = client.chat.completions.with_raw_response.create(
            model="teacher-offline", messages=text_messages("hi")
        )
        assert "x-ratelimit-limit-requests" not in raw.headers  # no limits configured: no rate-limit headers
    assert open_server.process.handle() is None  # stopped on exit


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        (
            data_url(encode(picture(), "PNG"), "image/jpeg"),
            "invalid_image",
            "declares image/jpeg but the bytes are image/png",
        ),
        (
            data_url(encode(picture()), "image/png"),
            "invalid_image",
            "declares image/png but the bytes are image/jpeg",
        ),
        ("data:image/jpeg;base64,@@not*base64!!", "invalid_image", "base64"),
        (data_url(b"definitely not an image"), "invalid_image", "could not be decoded"),
        (data_url(encode(picture())[:400]), "invalid_image", "could not be decoded"),  # truncated JPEG
        (data_url(encode(picture(), "BMP"), "image/bmp"), "invalid_image_format", "Unsupported image MIME"),
        ("https://example.com/cat.jpg", "invalid_image_url", "cannot fetch"),
    ],
    ids=["png-as-jpeg", "jpeg-as-png", "garbage-base64", "not-an-image", "truncated", "bmp", "http-url"],
)
def test_bad_images_are_refused_with_400(
    server: TeacherServerHandle, url: str, code: str, words: str
) -> None:
    with sync_client(server) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=vision_messages(url))
    assert caught.value.status_code == 400 and caught.value.code == code
    assert words in caught.value.message


def test_streaming_is_refused(server: TeacherServerHandle) -> None:
    with (
        sync_client(server) as client,
        pytest.raises(openai.BadRequestError, match="streaming not supported"),
    ):
        client.chat.completions.create(model=MODEL, messages=text_messages("hi"), stream=True)


def test_request_id_header_and_health(server: TeacherServerHandle, jpeg_url: str) -> None:
    with sync_client(server) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=vision_messages(jpeg_url)
        )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content
    assert httpx.get(f"{server.root_url}/health").json()["status"] == "ok"
    missing = httpx.get(
        f"{server.root_url}/v1/nothing-here", headers={"authorization": f"Bearer {server.api_key}"}
    )
    assert missing.status_code == 404 and "error" in missing.json()
