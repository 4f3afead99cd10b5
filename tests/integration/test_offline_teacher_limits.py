"""The offline teacher's RPM and TPM limits: 429s, Retry-After and x-ratelimit-* headers, over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import openai
import pytest

from tests.support.offline_teacher_helpers import async_client, picture_url, text_messages, vision_messages
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server

KEY = "sk-offline-teacher-limits-5b2e8c1d9f"
RPM, TPM = 100, 30_000  # per model, as started
DURATION = r"(\d+h)?(\d+m)?\d+(\.\d+)?s|\d+ms"  # OpenAI's header format: 120ms, 1s, 6m0s, 1m30.5s


def error_message(error: openai.APIStatusError) -> str:
    """Return the ``message`` of OpenAI's error body, as the server wrote it."""
    assert isinstance(error.body, dict)
    return str(error.body["message"])


@pytest.fixture(scope="module")
def limited_server() -> Iterator[TeacherServerHandle]:
    with running_teacher_server(api_key=KEY, rpm=RPM, tpm=TPM) as handle:
        yield handle


@pytest.fixture
def server(limited_server: TeacherServerHandle) -> TeacherServerHandle:
    """The module's limited server, with stats cleared, the start-up limits back and every bucket full."""
    limited_server.reset()
    limited_server.set_faults([])
    return limited_server


@pytest.fixture(scope="module")
def square_url() -> str:
    return picture_url((1024, 1024))


def test_the_limits_given_at_start_up_are_in_force(server: TeacherServerHandle) -> None:
    assert server.limits() == {"rpm": RPM, "tpm": TPM, "remaining": {}}
    assert server.set_limits(rpm=1)["rpm"] == 1
    server.reset()  # back to the start-up limits
    assert (server.limits()["rpm"], server.limits()["tpm"]) == (RPM, TPM)


async def test_tpm_429_reports_the_figures_and_when_to_retry(
    server: TeacherServerHandle, square_url: str
) -> None:
    messages = vision_messages(square_url, prompt=None)  # the image alone: 25,501 tokens on gpt-4o-mini
    async with async_client(server) as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
        first = raw.parse()
        assert first.usage is not None and first.usage.prompt_tokens == 25501
        assert raw.headers["x-ratelimit-limit-tokens"] == "30000"
        assert 4499 <= int(raw.headers["x-ratelimit-remaining-tokens"]) < 4600
        assert raw.headers["x-ratelimit-limit-requests"] == "100"
        assert raw.headers["x-ratelimit-remaining-requests"] == "99"
        assert re.fullmatch(DURATION, raw.headers["x-ratelimit-reset-tokens"])
        assert re.fullmatch(DURATION, raw.headers["x-ratelimit-reset-requests"])
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    error = caught.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded" and error.type == "tokens"
    assert isinstance(error.body, dict) and error.body["param"] is None
    found = re.fullmatch(
        r"Rate limit reached for gpt-4o-mini in organization org-offline on tokens per min \(TPM\): "
        r"Limit 30000, Used (\d+), Requested 25501\. Please try again in (\d+\.?\d*)s\. "
        r"Visit https://platform\.openai\.com/account/rate-limits to learn more\.",
        error_message(error),
    )
    assert found, error_message(error)
    assert 25_300 <= int(found.group(1)) <= 25_501
    retry_after = float(error.response.headers["retry-after"])
    assert 40.0 <= retry_after <= 42.01  # (25,501 - 4,499) tokens at 500 a second, less what refilled
    assert float(found.group(2)) == pytest.approx(retry_after, abs=0.001)
    assert int(error.response.headers["retry-after-ms"]) == pytest.approx(retry_after * 1000, abs=1)
    assert error.response.headers["x-ratelimit-limit-tokens"] == "30000"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "99"  # the refusal took nothing
    remaining = server.limits()["remaining"]["gpt-4o-mini"]
    assert remaining["requests"] == 99 and 4499 <= remaining["tokens"] < 4700
    totals = server.stats()["totals"]
    assert totals["rate_limited"] == 1 and totals["rate_limited_by"] == {"requests": 0, "tokens": 1}
    assert totals["by_status"] == {"200": 1, "429": 1}
    assert [r["rate_limited"] for r in server.stats()["requests"]] == [None, "tokens"]


async def test_the_output_cap_counts_and_waiting_retry_after_gets_through(
    server: TeacherServerHandle,
) -> None:
    server.set_limits(tpm=600)  # 10 tokens a second
    async with async_client(server) as client:
        # 100 prompt tokens + a cap of 450 output tokens: 550 counted, whatever the answer's length.
        await client.chat.completions.create(
            model="gpt-4o", messages=text_messages("x" * 400), max_tokens=450
        )
        with pytest.raises(openai.RateLimitError) as caught:  # 10 + 50 = 60 counted; ~50 left
            await client.chat.completions.create(
                model="gpt-4o", messages=text_messages("y" * 40), max_completion_tokens=50
            )
        retry_after = float(caught.value.response.headers["retry-after"])
        assert 0.5 <= retry_after <= 1.0
        assert "Requested 60." in caught.value.message
        await asyncio.sleep(retry_after)
        await client.chat.completions.create(
            model="gpt-4o", messages=text_messages("y" * 40), max_completion_tokens=50
        )
    records = server.stats()["requests"]
    assert [(r["status"], r["counted_tokens"]) for r in records] == [(200, 550), (429, 60), (200, 60)]


async def test_rpm_429_and_each_model_has_its_own_allowance(server: TeacherServerHandle) -> None:
    server.set_limits(rpm=2)
    async with async_client(server) as client:
        for _ in range(2):
            await client.chat.completions.create(model="gpt-4o", messages=text_messages("hi"))
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=text_messages("hi"))
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4.1", messages=text_messages("hi")
        )
    error = caught.value
    assert error.type == "requests" and error.code == "rate_limit_exceeded"
    assert error_message(error).startswith(
        "Rate limit reached for gpt-4o in organization org-offline on requests per min (RPM): "
        "Limit 2, Used 2, Requested 1. Please try again in "
    )
    headers = error.response.headers
    assert 29.0 <= float(headers["retry-after"]) <= 30.0  # one request every 30 s
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert re.fullmatch(r"(59\.\d+s|1m0s)", headers["x-ratelimit-reset-requests"])
    assert "x-ratelimit-limit-tokens" not in headers  # no TPM limit now: no token headers
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"  # gpt-4.1 untouched by gpt-4o's use
    assert server.stats()["totals"]["rate_limited_by"] == {"requests": 1, "tokens": 0}


async def test_a_request_larger_than_the_whole_limit_can_never_pass(server: TeacherServerHandle) -> None:
    server.set_limits(tpm=1000)
    async with async_client(server) as client:
        with pytest.raises(openai.RateLimitError) as caught:  # one gpt-4o-mini tile alone is 8,500 tokens
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=vision_messages(picture_url((64, 48)), prompt=None)
            )
    assert error_message(caught.value).startswith(
        "Request too large for gpt-4o-mini in organization org-offline on tokens per min (TPM): "
        "Limit 1000, Requested 8500. The input or output tokens must be reduced"
    )
    assert "retry-after" not in caught.value.response.headers  # waiting would not help


async def test_faults_still_fire_within_the_limits(server: TeacherServerHandle) -> None:
    server.set_faults([{"kind": "503", "times": 1}])
    async with async_client(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=text_messages("hi"))
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "99"  # it was admitted
        await client.chat.completions.create(model="gpt-4o", messages=text_messages("hi"))
    assert [r["status"] for r in server.stats()["requests"]] == [503, 200]
