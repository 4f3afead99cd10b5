"""The offline teacher server, through the real ``openai`` client against a real server process."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image, ImageDraw

from vqa_distill.offline_teacher import main as server_cli
from vqa_distill.offline_teacher.faults import FaultInjector, FaultRule, RequestView, load_fault_rules
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server
from vqa_distill.teacher import tokens

KEY = "sk-teacher-server-test-7c1e9a0b2d4f6e8a"
MODEL = "gpt-4o-mini"


# ----------------------------------------------------------------------------- helpers and fixtures


def picture(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (40, 90, 200)) -> Image.Image:
    """A picture with some structure, so colours, brightness and edges are not trivial."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((0, 0, w // 3, h // 3), fill=(250, 250, 250))
    draw.ellipse((w // 2, h // 2, w - 1, h - 1), fill=(200, 30, 30))
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **save: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def vision_messages(
    url: str, prompt: str = "Describe the defects.", detail: str = "high", system: str | None = None
) -> list[Any]:
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    content = [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": url, "detail": detail}},
    ]
    return [*messages, {"role": "user", "content": content}]


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[TeacherServerHandle]:
    with running_teacher_server(api_key=KEY, seed=7) as handle:
        yield handle


@pytest.fixture
def server(keyed_server: TeacherServerHandle) -> TeacherServerHandle:
    """The module's key-protected server, with stats, faults and latency reset for this test."""
    keyed_server.reset()
    keyed_server.set_faults([])
    keyed_server.set_latency(0.0)
    return keyed_server


@pytest.fixture
def client(server: TeacherServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg_url() -> str:
    return data_url(encode(picture()))


# ----------------------------------------------------------------------------- tokens.py


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (1024, 1024, "high", 765),  # OpenAI's worked examples
        (2048, 4096, "high", 1105),
        (4096, 8192, "low", 85),
        (100, 100, "high", 255),  # small images are never scaled up: one tile
        (512, 512, "high", 255),
        (513, 512, "high", 425),  # just over one tile wide
        (1920, 1080, "high", 1105),  # -> 1365x768: 3x2 tiles
        (4000, 3000, "high", 765),  # -> 2048x1536 -> 1024x768: 2x2 tiles
        (1024, 1024, "auto", 765),  # auto is billed as high
    ],
)
def test_image_tokens_follow_openais_formula(width: int, height: int, detail: str, expected: int) -> None:
    assert tokens.image_tokens(width, height, detail) == expected


def test_billed_size_and_bad_inputs() -> None:
    assert tokens.billed_image_size(4000, 3000) == (1024, 768)
    assert tokens.billed_image_size(300, 200) == (300, 200)
    with pytest.raises(ValueError):
        tokens.image_tokens(10, 10, "ultra")
    with pytest.raises(ValueError):
        tokens.image_tokens(0, 10)


def test_text_tokens_and_truncation() -> None:
    assert [tokens.text_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert (
        tokens.prompt_tokens(["abcd", "abcdefgh"], [(1024, 1024, "high"), (10, 10, "low")])
        == 1 + 2 + 765 + 85
    )
    text = "x" * 100
    assert tokens.text_tokens(tokens.truncate_to_tokens(text, 7)) == 7
    assert tokens.truncate_to_tokens("short", 50) == "short"


# ----------------------------------------------------------------------------- answers and usage


def test_answers_are_deterministic_and_depend_on_image_and_prompt(
    client: openai.OpenAI, jpeg_url: str
) -> None:
    def ask(url: str, prompt: str, system: str | None = None) -> str:
        completion = client.chat.completions.create(
            model=MODEL, messages=vision_messages(url, prompt, system=system)
        )
        assert completion.choices[0].finish_reason == "stop"
        return completion.choices[0].message.content or ""

    first = ask(jpeg_url, "Describe the defects.")
    assert first == ask(jpeg_url, "Describe the defects.")
    assert 40 <= len(first.split()) <= 80, first
    assert "320x240" in first and "Describe the defects" in first
    assert ask(jpeg_url, "What colour is it?") != first
    other = data_url(encode(picture(colour=(30, 160, 60))))
    assert ask(other, "Describe the defects.") != first
    assert ask(jpeg_url, "Describe the defects.", system="You are terse.") == ask(
        jpeg_url, "Describe the defects.", system="You are terse."
    )


@pytest.mark.parametrize(
    ("size", "detail"), [((320, 240), "high"), ((1600, 1200), "high"), ((1600, 1200), "low")]
)
def test_usage_equals_the_shared_token_formula(
    client: openai.OpenAI, size: tuple[int, int], detail: str
) -> None:
    system, prompt = "You inspect parts.", "List every scratch you can see."
    url = data_url(encode(picture(size)))
    completion = client.chat.completions.create(
        model=MODEL, messages=vision_messages(url, prompt, detail, system)
    )
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == tokens.prompt_tokens([system, prompt], [(*size, detail)])
    assert usage.completion_tokens == tokens.text_tokens(completion.choices[0].message.content or "")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert completion.object == "chat.completion" and completion.model == MODEL and completion.id


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_with_finish_reason_length(
    client: openai.OpenAI, jpeg_url: str, param: str
) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=vision_messages(jpeg_url), extra_body={param: 5}
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert len(completion.choices[0].message.content or "") == 5 * tokens.CHARS_PER_TOKEN


def test_fingerprint_is_of_pixels_not_bytes(client: openai.OpenAI, server: TeacherServerHandle) -> None:
    image = picture((200, 150))
    for level in (1, 9):  # same pixels, different PNG bytes
        client.chat.completions.create(
            model=MODEL,
            messages=vision_messages(data_url(encode(image, "PNG", compress_level=level), "image/png")),
        )
    records = server.stats()["requests"]
    assert len(records) == 2 and records[0]["fingerprints"] == records[1]["fingerprints"]
    assert len(records[0]["fingerprints"][0]) == 64 and records[0]["image_sizes"] == ["200x150"]


# ----------------------------------------------------------------------------- refusals


def test_wrong_key_is_refused_without_echoing_it(server: TeacherServerHandle, jpeg_url: str) -> None:
    wrong = "sk-wrong-key-0123456789abcdef"
    with openai.OpenAI(base_url=server.base_url, api_key=wrong, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert wrong not in caught.value.response.text and KEY not in caught.value.response.text
    assert httpx.get(f"{server.root_url}/_admin/stats").status_code == 401  # admin needs the key too
    assert server.stats()["requests"][0]["status"] == 401


def test_any_key_is_accepted_when_none_is_configured(jpeg_url: str) -> None:
    with (
        running_teacher_server(models=["teacher-offline"]) as open_server,
        openai.OpenAI(base_url=open_server.base_url, api_key="anything", max_retries=0) as c,
    ):
        completion = c.chat.completions.create(model="teacher-offline", messages=vision_messages(jpeg_url))
        assert completion.choices[0].message.content
        assert [m.id for m in c.models.list()] == ["teacher-offline"]
    assert open_server.process.poll() is not None  # stopped on exit


def test_unknown_model_is_404_and_models_are_listed(client: openai.OpenAI, jpeg_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9-vision", messages=vision_messages(jpeg_url))
    assert caught.value.code == "model_not_found"
    assert {m.id for m in client.models.list()} == {
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4.1-mini",
        "teacher-offline",
    }
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9-vision")


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
def test_bad_images_are_refused_with_400(client: openai.OpenAI, url: str, code: str, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=vision_messages(url))
    assert caught.value.status_code == 400 and caught.value.code == code
    assert words in caught.value.message


def test_streaming_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="streaming not supported"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)


# ----------------------------------------------------------------------------- faults


def test_http_faults_raise_the_clients_own_exceptions(
    client: openai.OpenAI, server: TeacherServerHandle, jpeg_url: str
) -> None:
    cases: list[tuple[dict[str, Any], type[openai.APIStatusError], int]] = [
        ({"kind": "429", "retry_after": 1.5}, openai.RateLimitError, 429),
        ({"kind": "503", "retry_after": 2}, openai.InternalServerError, 503),
        ({"kind": "500"}, openai.InternalServerError, 500),
        ({"kind": "502"}, openai.InternalServerError, 502),
        ({"kind": "400"}, openai.BadRequestError, 400),
    ]
    for rule, exc_type, status in cases:
        server.set_faults([rule])
        with pytest.raises(exc_type) as caught:
            client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
        assert isinstance(caught.value, openai.APIStatusError) and caught.value.status_code == status
        headers = caught.value.response.headers
        if "retry_after" in rule:
            assert float(headers["retry-after-ms"]) == rule["retry_after"] * 1000
            assert int(headers["retry-after"]) >= rule["retry_after"]
        else:
            assert "retry-after" not in headers
    totals = server.stats()["totals"]
    assert totals["by_status"] == {"400": 1, "429": 1, "500": 1, "502": 1, "503": 1}
    assert totals["by_fault"] == {"400": 1, "429": 1, "500": 1, "502": 1, "503": 1}


def test_bad_json_raises_a_json_decode_error_in_the_client(
    client: openai.OpenAI, server: TeacherServerHandle, jpeg_url: str
) -> None:
    # openai parses an application/json body with httpx's response.json(): a broken body surfaces as
    # json.JSONDecodeError (a ValueError), not as an openai.APIError.
    server.set_faults([{"kind": "bad_json"}])
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
    assert server.stats()["requests"][0]["status"] == 200


@pytest.mark.parametrize(
    ("kind", "finish_reason", "content"),
    [("truncate", "length", "some"), ("content_filter", "content_filter", None), ("empty", "stop", "")],
)
def test_content_faults_shape_the_choice(
    client: openai.OpenAI,
    server: TeacherServerHandle,
    jpeg_url: str,
    kind: str,
    finish_reason: str,
    content: str | None,
) -> None:
    full = (
        client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
        .choices[0]
        .message.content
    )
    server.set_faults([{"kind": kind}])
    choice = client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url)).choices[0]
    assert choice.finish_reason == finish_reason
    if content == "some":
        assert choice.message.content and full and full.startswith(choice.message.content)
        assert len(choice.message.content) < len(full)
    else:
        assert choice.message.content == content


def test_timeout_fault_outlasts_the_client_and_notices_the_hang_up(
    server: TeacherServerHandle, jpeg_url: str
) -> None:
    server.set_faults([{"kind": "timeout", "delay_s": 60}])
    with (
        openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=0.5) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        impatient.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
    deadline = time.monotonic() + 5
    while not server.stats()["requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.stats()["requests"][0]["status"] == 499  # gave up waiting once the client hung up


def test_times_counts_per_request_key(
    client: openai.OpenAI, server: TeacherServerHandle, jpeg_url: str
) -> None:
    server.set_faults([{"kind": "503", "times": 2}])
    for prompt in ("first question", "second question"):  # two keys: each fails twice, then succeeds
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url, prompt))
        client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url, prompt))
    client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url, "first question"))
    assert [r["status"] for r in server.stats()["requests"]] == [503, 503, 200, 503, 503, 200, 200]
    server.reset()  # counts start again
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url, "first question"))


def test_match_filters_pick_their_requests(client: openai.OpenAI, server: TeacherServerHandle) -> None:
    small, large = data_url(encode(picture((40, 40)))), data_url(encode(picture((80, 60))))
    client.chat.completions.create(model=MODEL, messages=vision_messages(large))
    large_fp = server.stats()["requests"][0]["fingerprints"][0]
    rules = [
        {"kind": "400", "match_text": "forbidden words"},
        {"kind": "500", "match_image_size": "40x40"},
        {"kind": "502", "match_fingerprint": large_fp[:12], "match_text": "only this"},
    ]
    assert [r["kind"] for r in server.set_faults(rules)] == ["400", "500", "502"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=vision_messages(large, "some forbidden words"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=vision_messages(small))
    assert caught.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=vision_messages(large, "only this"))
    assert caught.value.status_code == 502
    client.chat.completions.create(model=MODEL, messages=vision_messages(large, "something else"))
    faults = [r["fault"] for r in server.stats()["requests"]]
    assert faults == [None, "400", "500", "502", None]


def test_invalid_fault_rules_are_refused(server: TeacherServerHandle) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        server.set_faults([{"kind": "418"}])
    with pytest.raises(httpx.HTTPStatusError):
        server.set_faults([{"kind": "500", "probability": 2}])


def test_fault_injector_without_a_network() -> None:
    view_a = RequestView(
        model=MODEL, user_text="a", system="", fingerprints=("f" * 64,), image_sizes=((10, 10),)
    )
    view_b = RequestView(
        model=MODEL, user_text="b", system="", fingerprints=("f" * 64,), image_sizes=((10, 10),)
    )
    injector = FaultInjector([FaultRule(kind="429", times=1), FaultRule(kind="500", times=1)])
    assert [getattr(injector.pick(view_a), "kind", None) for _ in range(3)] == ["429", "500", None]
    assert getattr(injector.pick(view_b), "kind", None) == "429"
    never = FaultInjector([FaultRule(kind="500", probability=0.0)])
    assert all(never.pick(view_a) is None for _ in range(20))
    half = FaultInjector([FaultRule(kind="500", probability=0.5)], seed=3)
    fired = sum(half.pick(view_a) is not None for _ in range(200))
    assert 60 < fired < 140


def test_fault_files_load_from_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(json.dumps([{"kind": "503", "times": 2, "retry_after": 1}]))
    (tmp_path / "f.yaml").write_text("faults:\n  - kind: bad_json\n    match_text: cat\n")
    assert load_fault_rules(tmp_path / "f.json")[0].retry_after == 1
    assert load_fault_rules(tmp_path / "f.yaml") == [FaultRule(kind="bad_json", match_text="cat")]


# ----------------------------------------------------------------------------- stats, headers, latency


def test_stats_record_every_request(
    client: openai.OpenAI, server: TeacherServerHandle, jpeg_url: str
) -> None:
    before = time.time()
    completion = client.chat.completions.create(
        model=MODEL, messages=vision_messages(jpeg_url, "Is it round?")
    )
    server.set_faults([{"kind": "429"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url, "Is it round?"))
    stats = server.stats()
    ok, limited = stats["requests"]
    assert before <= ok["t"] <= limited["t"] <= time.time()
    assert (ok["status"], ok["model"], ok["user_text"], ok["fault"]) == (200, MODEL, "Is it round?", None)
    assert completion.usage is not None
    assert (ok["prompt_tokens"], ok["completion_tokens"]) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert (limited["status"], limited["fault"], limited["completion_tokens"]) == (429, "429", 0)
    assert ok["fingerprints"] == limited["fingerprints"] and ok["request_id"].startswith("req_")
    totals = stats["totals"]
    assert (totals["requests"], totals["ok"], totals["prompt_tokens"]) == (2, 1, 2 * ok["prompt_tokens"])
    server.reset()
    assert server.stats()["totals"]["requests"] == 0


def test_request_id_header(client: openai.OpenAI, jpeg_url: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=vision_messages(jpeg_url))
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content


def test_latency_is_concurrent_not_serial(server: TeacherServerHandle) -> None:
    server.set_latency(1.0, jitter_s=0.1)
    urls = [data_url(encode(picture((64, 48), colour=(i * 3, 100, 200)))) for i in range(80)]

    async def burst() -> float:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=30) as c:
            started = time.perf_counter()
            await asyncio.gather(
                *(c.chat.completions.create(model=MODEL, messages=vision_messages(u)) for u in urls)
            )
            return time.perf_counter() - started

    elapsed = asyncio.run(burst())
    assert 1.0 <= elapsed < 4.0  # serially this would take 80 s
    durations = [r["duration_s"] for r in server.stats()["requests"]]
    assert len(durations) == 80 and min(durations) >= 1.0


def test_health_needs_no_key_and_unknown_routes_are_json(server: TeacherServerHandle) -> None:
    assert httpx.get(f"{server.root_url}/health").json()["status"] == "ok"
    missing = httpx.get(f"{server.root_url}/v1/nothing-here", headers={"authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404 and "error" in missing.json()


# ----------------------------------------------------------------------------- CLI


def test_cli_registers_teacher_server_with_its_flags() -> None:
    parser = argparse.ArgumentParser()
    from vqa_distill.cli import offline_teacher as command

    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["teacher-server", "--api-key-env", "MY_KEY", "--latency", "0.5", "--models", "a,b"]
    )
    assert (args.port, args.host, args.api_key_env, args.latency, args.models) == (
        8765,
        "127.0.0.1",
        "MY_KEY",
        0.5,
        "a,b",
    )
    assert args.func is server_cli.run and not args.access_log


def test_cli_refuses_an_unset_key_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    assert server_cli.main(["--api-key-env", "NO_SUCH_KEY_VARIABLE"]) == 3
    assert "NO_SUCH_KEY_VARIABLE" in capsys.readouterr().err
