"""The client's error boundary, driven through the real ``openai`` client over an in-process transport.

Each answer below is what an endpoint could send; the test checks which of the project's classes it
becomes (transient: retried, permanent: recorded, fatal: the run stops) and that the key never leaks.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

from tests.support.fake_clock import FakeClock
from vqa_distill.errors import (
    FatalRunError,
    PermanentTeacherError,
    TeacherAuthError,
    TeacherError,
    TeacherModelError,
    TeacherUnreachableError,
    TransientTeacherError,
)
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.endpoint.client import ask, parse_retry_after, translate_error
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ratelimit.gate import RateGate

KEY = "sk-unit-7d1f0c9a2b4e6f8a0c2e4a6b8d0f1e3c"
BASE_URL = "http://teacher.invalid/v1"
Handler = Callable[[httpx2.Request], httpx2.Response]


def fake_client(handler: Handler) -> AsyncOpenAI:
    """Return a real AsyncOpenAI whose HTTP requests are answered by ``handler`` in process."""
    return AsyncOpenAI(
        api_key=KEY, base_url=BASE_URL, max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )  # fmt: skip


def error_body(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def completion(content: str = "A scratch.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }  # fmt: skip


def error_of_call(handler: Handler) -> TeacherError:
    """Make one chat call through ``handler`` and return what translate_error makes of its failure."""

    async def call() -> TeacherError:
        client = fake_client(handler)
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except Exception as exc:
            return translate_error(exc, api_key=KEY)
        finally:
            await client.close()
        raise AssertionError("the call succeeded")

    return asyncio.run(call())


# ----------------------------------------------------------------------------- translate_error


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentTeacherError),
        (401, PermanentTeacherError),  # mid-run; the endpoint check makes a refused key fatal first
        (403, PermanentTeacherError),
        (404, PermanentTeacherError),
        (408, TransientTeacherError),
        (409, TransientTeacherError),
        (413, PermanentTeacherError),
        (422, PermanentTeacherError),
        (429, TransientTeacherError),
        (500, TransientTeacherError),
        (502, TransientTeacherError),
        (503, TransientTeacherError),
        (504, TransientTeacherError),
    ],
)
def test_each_status_class_becomes_the_right_error(status: int, kind: type[TeacherError]) -> None:
    error = error_of_call(lambda request: httpx2.Response(status, json=error_body(f"no ({status})")))
    assert type(error) is kind
    assert error.status_code == status
    assert str(error) == f"HTTP {status}: no ({status})"


def test_a_429_carries_its_retry_after() -> None:
    headers = {"retry-after": "7", "retry-after-ms": "6500"}
    error = error_of_call(lambda request: httpx2.Response(429, json=error_body("slow down"), headers=headers))
    assert isinstance(error, TransientTeacherError) and error.retry_after == 6.5


def test_a_timeout_is_transient() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    error = error_of_call(handler)
    assert isinstance(error, TransientTeacherError) and str(error) == "the request timed out"


def test_a_refused_connection_is_transient_mid_run() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    error = error_of_call(handler)
    assert isinstance(error, TransientTeacherError)
    assert str(error).startswith("connection failed: ConnectError: connection refused")


def test_a_200_that_is_not_json_is_transient() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b'{"id": "chatcmpl-broken", "choi', headers={"content-type": "application/json"})

    error = error_of_call(handler)
    assert isinstance(error, TransientTeacherError) and "not valid JSON" in str(error)




def test_the_key_is_redacted_from_an_echoing_endpoint() -> None:
    error = error_of_call(lambda request: httpx2.Response(400, json=error_body(f"bad key {KEY} in request")))
    assert KEY not in str(error) and "[REDACTED]" in str(error)


def test_an_unexpected_exception_is_permanent_and_redacted() -> None:
    error = translate_error(RuntimeError(f"boom {KEY}"), api_key=KEY)
    assert isinstance(error, PermanentTeacherError) and str(error) == "RuntimeError: boom [REDACTED]"


# ----------------------------------------------------------------------------- parse_retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.25"}, 1.25),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),  # the precise one first
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),  # garbage ms falls back to seconds
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after-ms": "-100"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert parse_retry_after({"retry-after": in_ten}) == pytest.approx(10, abs=1.5)
    in_the_past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after({"retry-after": in_the_past}) == 0.0
    assert parse_retry_after({"retry-after": "Wed, 99 Foo 2024 25:61:00 GMT"}) is None


# ----------------------------------------------------------------------------- check_endpoint


class Recorder:
    """An endpoint scripted per path; records every request it saw."""

    def __init__(self, routes: dict[str, Callable[[httpx2.Request], httpx2.Response]]):
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, Any] | None]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, request.url.path, body))
        for prefix, answer in self.routes.items():
            if request.url.path.startswith(prefix):
                return answer(request)
        return httpx2.Response(404, json={"detail": "Not Found"})


def check(model: str, endpoint: Recorder) -> None:
    async def run() -> None:
        client = fake_client(endpoint)
        try:
            await check_endpoint(client, model)
        finally:
            await client.close()

    asyncio.run(run())


def test_check_endpoint_asks_the_free_models_route_only() -> None:
    endpoint = Recorder({"/v1/models/": lambda r: httpx2.Response(200, json={"id": "gpt-4o-mini", "object": "model"})})
    check("gpt-4o-mini", endpoint)
    assert [(method, path) for method, path, _ in endpoint.seen] == [("GET", "/v1/models/gpt-4o-mini")]


def test_a_refused_key_an_unknown_model_and_no_endpoint_say_three_different_things() -> None:
    refused = Recorder({"/v1/": lambda r: httpx2.Response(401, json=error_body("Incorrect API key", "invalid_api_key"))})
    with pytest.raises(TeacherAuthError) as auth:
        check("gpt-4o-mini", refused)
    unknown = Recorder(
        {"/v1/models/": lambda r: httpx2.Response(404, json=error_body("no such model", "model_not_found"))}
    )
    with pytest.raises(TeacherModelError) as model:
        check("gpt-9", unknown)

    def unreachable(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(TeacherUnreachableError) as down:
        check("gpt-4o-mini", Recorder({"/": unreachable}))
    messages = [str(auth.value), str(model.value), str(down.value)]
    assert messages == [
        f"the endpoint {BASE_URL}/ refused the API key (HTTP 401): check OPENAI_API_KEY or the Secret block",
        f"the endpoint {BASE_URL}/ does not serve model 'gpt-9' (HTTP 404)",
        f"cannot reach the endpoint {BASE_URL}/: ConnectError: connection refused",
    ]
    assert all(isinstance(e.value, FatalRunError) for e in (auth, model, down))
    assert not any(KEY in m for m in messages)
    assert [path for _, path, _ in unknown.seen] == ["/v1/models/gpt-9"]  # decided without a chat call


def test_a_timeout_at_the_check_is_unreachable() -> None:
    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectTimeout("timed out", request=request)

    with pytest.raises(TeacherUnreachableError, match="cannot reach the endpoint"):
        check("gpt-4o-mini", Recorder({"/": slow}))


def test_a_forbidden_model_is_a_key_problem() -> None:
    endpoint = Recorder({"/v1/models/": lambda r: httpx2.Response(403, json=error_body("not allowed"))})
    with pytest.raises(TeacherAuthError, match=r"may not use model 'o3'.*\(HTTP 403\)"):
        check("o3", endpoint)


@pytest.mark.parametrize(
    "route_missing",
    [
        lambda r: httpx2.Response(404, json={"detail": "Not Found"}),  # vLLM and most proxies
        lambda r: httpx2.Response(405, json={"detail": "Method Not Allowed"}),
        lambda r: httpx2.Response(501, text="not implemented"),
        lambda r: httpx2.Response(200, text="<html>a proxy's web page</html>"),
    ],
)
def test_without_the_models_route_one_minimal_chat_call_follows_the_model_rules(
    route_missing: Callable[[httpx2.Request], httpx2.Response],
) -> None:
    endpoint = Recorder(
        {"/v1/models/": route_missing, "/v1/chat/completions": lambda r: httpx2.Response(200, json=completion("OK"))}
    )
    check("o4-mini", endpoint)
    assert [path for _, path, _ in endpoint.seen] == ["/v1/models/o4-mini", "/v1/models", "/v1/chat/completions"]
    body = endpoint.seen[-1][2]
    assert body is not None and body["model"] == "o4-mini"
    assert "max_completion_tokens" in body and "max_tokens" not in body and "temperature" not in body


def test_the_fallback_call_uses_max_tokens_for_chat_models() -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(200, json=completion("OK"))})
    check("gpt-4o-mini", endpoint)
    body = endpoint.seen[-1][2]
    assert body is not None and body["max_tokens"] == 1 and "max_completion_tokens" not in body


def test_the_fallback_call_still_tells_an_unknown_model() -> None:
    endpoint = Recorder(
        {"/v1/chat/completions": lambda r: httpx2.Response(404, json=error_body("model gone", "model_not_found"))}
    )
    with pytest.raises(TeacherModelError, match="does not serve model"):
        check("gpt-4o-mini", endpoint)


def test_a_busy_endpoint_at_the_check_lets_the_run_go_on() -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(503, json=error_body("overloaded"))})
    check("gpt-4o-mini", endpoint)  # the key and endpoint answered: the run's own retries handle load


# ----------------------------------------------------------------------------- ask


def one_request(model: str, **params: Any) -> TeacherRequest:
    return TeacherRequest(
        image_path="/x.jpg", rel_path="x.jpg", sha256="0" * 64, prompt="Describe.", system=None, model=model,
        params={"detail": "auto", "max_pixels": 10_000, "max_tokens": 50, **params},
    )  # fmt: skip


IMAGE = PreparedImage(width=64, height=48, original_width=64, original_height=48, data_url="data:image/jpeg;base64,AA==")


def ask_through(endpoint: Recorder, request: TeacherRequest, gate: RateGate) -> Any:
    async def run() -> Any:
        client = fake_client(endpoint)
        try:
            return await ask(client, gate, request, IMAGE)
        finally:
            await client.close()

    return asyncio.run(run())


def test_ask_sends_what_a_reasoning_model_accepts() -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(200, json=completion())})
    gate = RateGate(6000, 10_000_000, clock=FakeClock())
    answer = ask_through(endpoint, one_request("gpt-5-mini", temperature=0.3, reasoning_effort="minimal"), gate)
    assert answer.text == "A scratch." and answer.prompt_tokens == 10
    body = endpoint.seen[0][2]
    assert body is not None
    assert body["max_completion_tokens"] == 50 and body["reasoning_effort"] == "minimal"
    assert "max_tokens" not in body and "temperature" not in body


def test_ask_sends_what_a_chat_model_accepts() -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(200, json=completion())})
    gate = RateGate(6000, 10_000_000, clock=FakeClock())
    ask_through(endpoint, one_request("gpt-4o-mini", temperature=0.3), gate)
    body = endpoint.seen[0][2]
    assert body is not None and body["max_tokens"] == 50 and body["temperature"] == 0.3
    assert "reasoning_effort" not in body and "max_completion_tokens" not in body


def test_a_429_slows_the_gate_and_pauses_it() -> None:
    clock = FakeClock()
    gate = RateGate(6000, 10_000_000, clock=clock)
    endpoint = Recorder(
        {"/v1/chat/completions": lambda r: httpx2.Response(429, json=error_body("slow"), headers={"retry-after": "4"})}
    )
    with pytest.raises(TransientTeacherError) as raised:
        ask_through(endpoint, one_request("gpt-4o-mini"), gate)
    assert raised.value.status_code == 429 and raised.value.retry_after == 4.0
    assert gate.pace == pytest.approx(0.7)
    started = clock.t
    asyncio.run(gate.acquire(10))
    assert clock.t - started == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx2.Response(200, content=b"{not json", headers={"content-type": "application/json"}), "not valid JSON"),
        (httpx2.Response(200, text="<html>proxy login</html>"), "without choices"),
        (httpx2.Response(200, json={"id": "x", "object": "chat.completion", "choices": []}), "without choices"),
    ],
)
def test_a_malformed_200_through_ask_is_transient(answer: httpx2.Response, reason: str) -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: answer})
    with pytest.raises(TransientTeacherError, match=reason):
        ask_through(endpoint, one_request("gpt-4o-mini"), RateGate(6000, 10_000_000, clock=FakeClock()))
