"""The offline teacher's relay and self-hosted modes, over HTTP through the real ``openai`` client.

Relay: other vendors' names billed by their own image rules, no ``GET /v1/models/{id}``, no
``x-ratelimit-*`` headers, its own 429s. Self-hosted: K requests in service, Q waiting (their latency
grows), 503 beyond, never a 429 nor a rate-limit header. The expected token counts are the literal
worked examples of tests/unit/test_offline_teacher_vendor_images.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import openai
import pytest

from tests.support.offline_teacher_helpers import async_client, picture_url, text_messages, vision_messages
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server
from vqa_distill.offline_teacher.server.config import RELAY_MODELS, SELF_HOSTED_MODELS

KEY = "sk-offline-teacher-modes-7c41d0a2e9"
ALIAS = "my-teacher"  # a name no table knows, billed by the relay as qwen-vl-max
RELAY_RPM = 1000  # per model: never reached by the billing tests
K, Q = 2, 2  # the self-hosted server's slots and queue, as started
SERVICE_S = 2.0  # each request's service time in the capacity test: all ten arrive within it
SLACK_S = 0.25  # timer and scheduling slack on a busy machine


def ratelimit_headers(headers: Mapping[str, str]) -> list[str]:
    """Return the names of the ``x-ratelimit-*`` headers among ``headers``."""
    return [name for name in headers if name.lower().startswith("x-ratelimit-")]


@pytest.fixture(scope="module")
def urls() -> dict[tuple[int, int], str]:
    """JPEG data URLs of the sizes the worked examples use, made once."""
    sizes = [(200, 200), (384, 384), (448, 448), (640, 480), (1024, 1024), (1092, 1092), (1920, 1080)]
    return {size: picture_url(size) for size in [*sizes, (4000, 3000)]}


@pytest.fixture(scope="module")
def relay_server() -> Iterator[TeacherServerHandle]:
    # The alias is served by being billed as something: no need to list it among the models.
    with running_teacher_server(
        mode="relay", api_key=KEY, rpm=RELAY_RPM, bill_as={ALIAS: "qwen-vl-max"}
    ) as handle:
        yield handle


@pytest.fixture
def relay(relay_server: TeacherServerHandle) -> TeacherServerHandle:
    relay_server.reset()
    return relay_server


@pytest.fixture(scope="module")
def hosted_server() -> Iterator[TeacherServerHandle]:
    with running_teacher_server(mode="self-hosted", api_key=KEY, concurrency=K, queue_size=Q) as handle:
        yield handle


@pytest.fixture
def hosted(hosted_server: TeacherServerHandle) -> TeacherServerHandle:
    """The self-hosted server as started (K, Q), no latency, stats cleared."""
    hosted_server.reset()
    hosted_server.set_latency(0.0)
    return hosted_server


async def prompt_tokens(handle: TeacherServerHandle, model: str, url: str) -> int:
    """Send one image alone (no text, so the usage is the image's tokens) and return the billed prompt tokens."""
    async with async_client(handle) as client:
        completion = await client.chat.completions.create(
            model=model, messages=vision_messages(url, prompt=None, detail="high"), max_tokens=50
        )
    assert completion.usage is not None
    return completion.usage.prompt_tokens


# ----------------------------------------------------------------------------- relay


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("qwen-vl-max", (640, 480), 393),  # 644x476 = 23 x 17 cells + 2 markers
        ("qwen-vl-plus", (1024, 1024), 1227),  # scaled into 1,280 tokens: 980x980 = 35 x 35 + 2
        ("qwen2.5-vl-72b-instruct", (4000, 3000), 1232),  # 1148x840 = 41 x 30 + 2
        ("gemini-2.0-flash", (384, 384), 258),  # small: one image
        ("gemini-2.5-flash", (1920, 1080), 1548),  # 3 x 2 tiles of 768 px
        ("gemini-2.5-pro", (4000, 3000), 6192),  # 6 x 4 tiles
        ("claude-3-haiku-20240307", (200, 200), 54),  # 40,000 / 750, rounded up
        ("claude-3-5-sonnet-20241022", (1092, 1092), 1590),
        ("claude-sonnet-4-20250514", (4000, 3000), 1598),  # scaled to 1264x948
        ("glm-4v", (640, 480), 1602),  # any size: 1120x1120 -> 40 x 40 + 2
        ("glm-4v-plus", (4000, 3000), 1602),
        (ALIAS, (1024, 1024), 1227),  # billed as qwen-vl-max
    ],
)
async def test_relay_bills_each_family_by_its_own_rule(
    relay: TeacherServerHandle,
    urls: dict[tuple[int, int], str],
    model: str,
    size: tuple[int, int],
    expected: int,
) -> None:
    assert await prompt_tokens(relay, model, urls[size]) == expected
    record = relay.stats()["requests"][0]
    assert (record["model"], record["prompt_tokens"], record["status"]) == (model, expected, 200)


async def test_relay_lists_its_models_but_has_no_model_lookup(relay: TeacherServerHandle) -> None:
    async with async_client(relay) as client:
        assert [m.id async for m in client.models.list()] == [*RELAY_MODELS, ALIAS]
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("qwen-vl-max")  # served, but a relay has no such route
    error = caught.value
    assert error.status_code == 404 and error.code is None  # not "model_not_found": no verdict on the model
    assert error.body == {
        "message": "GET /v1/models/qwen-vl-max: Not Found",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert relay.mode()["model_lookup"] is False


async def test_relay_answers_its_own_429s_without_ratelimit_headers(relay: TeacherServerHandle) -> None:
    relay.set_limits(rpm=2)
    async with async_client(relay) as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="gemini-2.0-flash", messages=text_messages("hi")
            )
            assert ratelimit_headers(raw.headers) == []
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gemini-2.0-flash", messages=text_messages("hi"))
    assert ratelimit_headers(caught.value.response.headers) == []
    assert (
        float(caught.value.response.headers["retry-after"]) > 0
    )  # the limit's own wait, as a relay may pass on
    assert relay.stats()["totals"]["rate_limited_by"] == {"requests": 1, "tokens": 0}


async def test_relay_knobs_bring_back_the_lookup_and_the_headers(urls: dict[tuple[int, int], str]) -> None:
    with running_teacher_server(
        mode="relay", rpm=1, model_lookup=True, ratelimit_headers=True, retry_after=False
    ) as handle:
        async with async_client(handle) as client:
            assert (await client.models.retrieve("glm-4v")).id == "glm-4v"
            with pytest.raises(openai.NotFoundError) as caught:
                await client.models.retrieve("gpt-4o")  # not among the relay's names
            assert caught.value.code == "model_not_found"
            raw = await client.chat.completions.with_raw_response.create(
                model="glm-4v", messages=vision_messages(urls[(640, 480)], prompt=None)
            )
            assert raw.parse().usage.prompt_tokens == 1602  # type: ignore[union-attr]
            assert raw.headers["x-ratelimit-limit-requests"] == "1"
            with pytest.raises(openai.RateLimitError) as limited:
                await client.chat.completions.create(model="glm-4v", messages=text_messages("hi"))
        assert "retry-after" not in limited.value.response.headers
        assert handle.mode()["mode"] == "relay"


# ----------------------------------------------------------------------------- self-hosted


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("Qwen/Qwen2.5-VL-72B-Instruct", (1024, 1024), 1371),  # the processor's budget: 37 x 37 + 2
        ("Qwen/Qwen2.5-VL-72B-Instruct", (4000, 3000), 15303),  # 143 x 107 + 2: a 12 MP photo, uncapped
        ("OpenGVLab/InternVL2_5-78B", (448, 448), 258),  # one 448-px tile + <img></img>
        ("OpenGVLab/InternVL2_5-78B", (1920, 1080), 2306),  # 4 x 2 tiles + thumbnail
        ("OpenGVLab/InternVL2_5-78B", (4000, 3000), 3330),  # 4 x 3 tiles + thumbnail
    ],
)
async def test_self_hosted_bills_by_the_models_processor(
    hosted: TeacherServerHandle,
    urls: dict[tuple[int, int], str],
    model: str,
    size: tuple[int, int],
    expected: int,
) -> None:
    assert await prompt_tokens(hosted, model, urls[size]) == expected


async def test_self_hosted_lists_models_but_has_no_lookup(hosted: TeacherServerHandle) -> None:
    async with async_client(hosted) as client:
        assert [m.id async for m in client.models.list()] == list(SELF_HOSTED_MODELS)
        with pytest.raises(openai.NotFoundError) as lookup:
            await client.models.retrieve(SELF_HOSTED_MODELS[0])
        with pytest.raises(openai.NotFoundError) as chat:
            await client.chat.completions.create(model="gpt-4o", messages=text_messages("hi"))
    assert lookup.value.code is None
    assert chat.value.code == "404"  # vLLM gives the status as its code; the client makes it a string
    assert chat.value.body == {  # vLLM's wording
        "message": "The model `gpt-4o` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    with pytest.raises(httpx.HTTPStatusError) as refused:
        hosted.set_limits(rpm=60)  # a self-hosted server has no rate limits to set
    assert refused.value.response.status_code == 400


async def test_self_hosted_serves_k_queues_q_and_refuses_the_rest(hosted: TeacherServerHandle) -> None:
    hosted.set_latency(SERVICE_S)

    async def ask(client: openai.AsyncOpenAI, i: int) -> tuple[int, Mapping[str, str], float]:
        started = time.monotonic()
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=SELF_HOSTED_MODELS[0], messages=text_messages(f"question {i}")
            )
            return raw.http_response.status_code, raw.headers, time.monotonic() - started
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers, time.monotonic() - started

    async with async_client(hosted) as client:
        results = await asyncio.gather(*(ask(client, i) for i in range(10)))

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * (K + Q) + [503] * (10 - K - Q)  # never a 429
    assert all(ratelimit_headers(headers) == [] for _, headers, _ in results)
    waits = sorted(seconds for status, _, seconds in results if status == 200)
    assert waits[-1] >= 2 * SERVICE_S - SLACK_S  # the queued ones waited a whole service for a slot

    records = hosted.stats()["requests"]
    served = [r for r in records if r["status"] == 200]
    overloaded = [r for r in records if r["status"] == 503]
    assert len(served) == K + Q and len(overloaded) == 10 - K - Q
    assert all(r["overloaded"] and r["service_started"] is None for r in overloaded)
    assert max_overlap(served) <= K
    assert sorted(r["in_service"] for r in served) == [1, 2, 2, 2]  # never more than K at once
    queued = sorted(r["queue_wait_s"] for r in served)[-Q:]
    assert all(wait >= SERVICE_S - SLACK_S for wait in queued)
    assert all(r["service_s"] >= SERVICE_S - 0.05 for r in served)
    totals = hosted.stats()["totals"]
    assert totals["overloaded"] == 10 - K - Q and totals["by_status"] == {"200": K + Q, "503": 10 - K - Q}
    assert totals["service_s"] >= (K + Q) * (SERVICE_S - 0.05)  # busy slot-seconds, for utilisation
    capacity = hosted.capacity()
    assert (capacity["peak_in_service"], capacity["peak_queued"], capacity["overloaded"]) == (
        K,
        Q,
        10 - K - Q,
    )
    assert (capacity["in_service"], capacity["queued"], capacity["enforced"]) == (0, 0, True)


def max_overlap(records: list[dict[str, Any]]) -> int:
    """Return the most service intervals ``[service_started, + service_s)`` open at one moment."""
    events = sorted(
        [(r["service_started"], 1) for r in records]
        + [(r["service_started"] + r["service_s"], -1) for r in records],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    open_now = peak = 0
    for _, change in events:
        open_now += change
        peak = max(peak, open_now)
    return peak


async def test_service_time_grows_with_the_batch(hosted: TeacherServerHandle) -> None:
    hosted.set_latency(0.5)
    hosted.set_capacity(concurrency=4, queue_size=0, latency_per_active_s=0.5)
    async with async_client(hosted) as client:
        await asyncio.gather(
            *(
                client.chat.completions.create(model=SELF_HOSTED_MODELS[1], messages=text_messages(f"q{i}"))
                for i in range(4)
            )
        )
    records = hosted.stats()["requests"]
    assert {r["status"] for r in records} == {200}
    for r in records:  # 0.5 s, + 0.5 s for each other request in service when it began
        expected = 0.5 + 0.5 * (r["in_service"] - 1)
        assert expected - 0.05 <= r["service_s"] <= expected + 1.0
    assert max(r["in_service"] for r in records) >= 2


async def test_a_client_gone_from_the_queue_frees_its_place(hosted: TeacherServerHandle) -> None:
    hosted.set_latency(1.5)
    hosted.set_capacity(concurrency=1, queue_size=5)
    async with async_client(hosted) as client, async_client(hosted, timeout=0.5) as impatient:
        first = asyncio.create_task(
            client.chat.completions.create(model=SELF_HOSTED_MODELS[0], messages=text_messages("a"))
        )
        await asyncio.sleep(0.2)
        with pytest.raises(openai.APITimeoutError):  # waits in line, gives up after 0.5 s
            await impatient.chat.completions.create(model=SELF_HOSTED_MODELS[0], messages=text_messages("b"))
        await client.chat.completions.create(model=SELF_HOSTED_MODELS[0], messages=text_messages("c"))
        await first
    by_text = {r["user_text"]: r for r in hosted.stats()["requests"]}
    gone = by_text["b"]
    assert gone["status"] == 499 and gone["service_started"] is None and gone["queue_wait_s"] >= 0.4
    # "c" waited only for "a", never for the request that left the line before it.
    assert by_text["c"]["queue_wait_s"] <= 1.5 + SLACK_S
    assert by_text["c"]["service_started"] >= by_text["a"]["service_started"] + 1.5 - 0.05
