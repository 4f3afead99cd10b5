"""Injected faults, stats and latency of the offline teacher, through the real ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.offline_teacher_helpers import async_client, picture_url, sync_client, vision_messages
from vqa_distill.offline_teacher.process import TeacherServerHandle

MODEL = "gpt-4o-mini"


@pytest.fixture
def server(teacher: Any) -> TeacherServerHandle:
    """The session's key-protected server, reset for this test."""
    assert isinstance(teacher, TeacherServerHandle)
    return teacher


@pytest.fixture
def client(server: TeacherServerHandle) -> Iterator[openai.OpenAI]:
    with sync_client(server) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg_url() -> str:
    return picture_url()


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
    assert totals["rate_limited"] == 0  # an injected 429 is a fault, not the limits


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
    full = client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url)).choices[0]
    server.set_faults([{"kind": kind}])
    choice = client.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url)).choices[0]
    assert choice.finish_reason == finish_reason
    if content == "some":
        assert choice.message.content and full.message.content
        assert full.message.content.startswith(choice.message.content)
        assert len(choice.message.content) < len(full.message.content)
    else:
        assert choice.message.content == content


def test_timeout_fault_outlasts_the_client_and_notices_the_hang_up(
    server: TeacherServerHandle, jpeg_url: str
) -> None:
    server.set_faults([{"kind": "timeout", "delay_s": 60}])
    with sync_client(server, timeout=0.5) as impatient, pytest.raises(openai.APITimeoutError):
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
    small, large = picture_url((40, 40)), picture_url((80, 60))
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
    assert (ok["prompt_tokens"], ok["counted_tokens"]) == (8503, 8503)  # 1 tile + 3 text; no output cap
    assert (limited["status"], limited["fault"], limited["completion_tokens"]) == (429, "429", 0)
    assert limited["rate_limited"] is None
    assert ok["fingerprints"] == limited["fingerprints"] and ok["request_id"].startswith("req_")
    totals = stats["totals"]
    assert (totals["requests"], totals["ok"], totals["prompt_tokens"]) == (2, 1, 2 * ok["prompt_tokens"])
    server.reset()
    assert server.stats()["totals"]["requests"] == 0


def test_latency_is_concurrent_not_serial(server: TeacherServerHandle) -> None:
    server.set_latency(1.0, jitter_s=0.1)
    urls = [picture_url((64, 48), colour=(i * 3, 100, 200)) for i in range(80)]

    async def burst() -> float:
        async with async_client(server, timeout=30) as c:
            started = time.perf_counter()
            await asyncio.gather(
                *(c.chat.completions.create(model=MODEL, messages=vision_messages(u)) for u in urls)
            )
            return time.perf_counter() - started

    elapsed = asyncio.run(burst())
    assert 1.0 <= elapsed < 4.0  # serially this would take 80 s
    durations = [r["duration_s"] for r in server.stats()["requests"]]
    assert len(durations) == 80 and min(durations) >= 1.0


def hang_up_once(server: TeacherServerHandle, jpeg_url: str) -> dict[str, Any]:
    """Ask with a client that gives up after 0.3 s (a killed worker), then return the server's record of it."""
    with sync_client(server, timeout=0.3) as impatient, pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
    deadline = time.monotonic() + 5
    while not server.stats()["requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    record: dict[str, Any] = server.stats()["requests"][0]
    return record


def test_an_answer_the_client_never_received_is_not_counted_as_paid(server: TeacherServerHandle, jpeg_url: str) -> None:
    """A worker killed mid-request hangs up during the answer's latency: the teacher records 499, not 200.

    Without this, the team stack's "nothing paid twice" count would charge a dead client's answer.
    """
    server.set_latency(1.5)
    record = hang_up_once(server, jpeg_url)
    assert record["status"] == 499 and record["duration_s"] < 1.2  # noticed the hang-up, did not answer
    assert record["billed"] is False and record["completion_tokens"] == 0
    server.set_latency(0.0)


@pytest.mark.parametrize("switched", ["by flag", "by the admin API"])
def test_with_bill_hung_up_a_hung_up_clients_answer_is_computed_and_billed(jpeg_url: str, switched: str) -> None:
    """As a real API does: the model ran, so the answer a killed worker never received is charged."""
    from vqa_distill.offline_teacher.process import running_teacher_server

    with running_teacher_server(latency_s=1.0, bill_hung_up=switched == "by flag") as billing_server:
        if switched == "by the admin API":
            billing_server.set_billing(True)
        record = hang_up_once(billing_server, jpeg_url)
        assert record["status"] == 499 and record["billed"] is True
        assert record["completion_tokens"] > 0 and record["prompt_tokens"] > 0
        assert record["duration_s"] >= 1.0  # the model ran to the end of its latency
        with sync_client(billing_server) as patient:
            patient.chat.completions.create(model=MODEL, messages=vision_messages(jpeg_url))
        assert [r["billed"] for r in billing_server.stats()["requests"]] == [True, True]
