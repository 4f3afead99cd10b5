"""The endpoint check in front of relays and self-hosted servers, through the real ``openai`` client.

A relay or a vLLM server has no ``GET /v1/models/{id}``: its plain 404 means the route is missing,
not the model. The check then reads the free model list, and only then makes one minimal call; a run
is refused only on a clear answer.
"""

from __future__ import annotations

import logging

import httpx2
import pytest

from tests.unit.test_teacher_client_errors import BASE_URL, KEY, Recorder, check, completion, error_body
from vqa_distill.errors import TeacherAuthError, TeacherModelError

PLAIN_404 = {"detail": "Not Found"}  # Starlette's and FastAPI's answer to a path they do not route
VLLM_404 = {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "param": None, "code": 404}


def model_list(*names: str) -> dict[str, object]:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "vllm"} for n in names]}


def test_a_relay_without_the_model_route_is_not_refused_for_a_404_that_names_no_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vqa_distill.teacher")
    relay = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(404, json=PLAIN_404)})
    check("qwen-vl-max", relay)  # no FatalRunError: the relay lacks a route, not the model
    assert [path for _, path, _ in relay.seen] == ["/v1/models/qwen-vl-max", "/v1/models", "/v1/chat/completions"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "answered 404 to a test call for model 'qwen-vl-max'" in warned[0]
    assert KEY not in warned[0]


def test_a_server_that_lists_the_model_needs_no_call() -> None:
    vllm = Recorder({
        "/v1/models/": lambda r: httpx2.Response(404, json=PLAIN_404),
        "/v1/models": lambda r: httpx2.Response(200, json=model_list("Qwen/Qwen2.5-VL-72B-Instruct")),
    })  # fmt: skip
    check("Qwen/Qwen2.5-VL-72B-Instruct", vllm)
    assert [path for _, path, _ in vllm.seen] == ["/v1/models/Qwen/Qwen2.5-VL-72B-Instruct", "/v1/models"]


def test_a_server_whose_list_and_answer_both_lack_the_model_refuses_the_run_naming_what_it_serves() -> None:
    vllm = Recorder({
        "/v1/models/": lambda r: httpx2.Response(404, json=PLAIN_404),
        "/v1/models": lambda r: httpx2.Response(200, json=model_list("Qwen/Qwen2.5-VL-7B-Instruct")),
        "/v1/chat/completions": lambda r: httpx2.Response(404, json=VLLM_404),
    })  # fmt: skip
    with pytest.raises(TeacherModelError) as refused:
        check("Qwen/Qwen2.5-VL-72B-Instruct", vllm)
    assert str(refused.value) == (
        f"the endpoint {BASE_URL}/ does not serve model 'Qwen/Qwen2.5-VL-72B-Instruct' (HTTP 404); "
        "it serves 'Qwen/Qwen2.5-VL-7B-Instruct'"
    )


def test_a_relay_that_lists_other_names_still_gets_the_minimal_call() -> None:
    relay = Recorder({
        "/v1/models/": lambda r: httpx2.Response(404, json=PLAIN_404),
        "/v1/models": lambda r: httpx2.Response(200, json=model_list("gpt-4o")),  # an incomplete list
        "/v1/chat/completions": lambda r: httpx2.Response(200, json=completion("OK")),
    })  # fmt: skip
    check("qwen-vl-max", relay)
    assert relay.seen[-1][1] == "/v1/chat/completions"


def test_a_spent_quota_at_the_check_stops_the_run_in_one_line_about_billing() -> None:
    spent = error_body("You exceeded your current quota, please check your plan and billing details.")
    spent["error"].update(type="insufficient_quota", code="insufficient_quota")
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(429, json=spent)})
    with pytest.raises(TeacherAuthError) as refused:
        check("gpt-4o-mini", endpoint)
    assert str(refused.value) == (
        f"the endpoint {BASE_URL}/ refuses requests: the account's quota is spent (insufficient_quota); "
        "check the plan and billing of the account behind the API key"
    )


def test_a_busy_429_at_the_check_still_lets_the_run_go_on() -> None:
    endpoint = Recorder({"/v1/chat/completions": lambda r: httpx2.Response(429, json=error_body("slow down"))})
    check("gpt-4o-mini", endpoint)


def test_a_model_route_answering_something_else_is_not_taken_for_the_model() -> None:
    """A relay that answers every path under /v1/models with its list: not a yes for this model."""
    relay = Recorder({
        "/v1/models": lambda r: httpx2.Response(200, json=model_list("gpt-4o")),
        "/v1/chat/completions": lambda r: httpx2.Response(200, json=completion("OK")),
    })  # fmt: skip
    check("qwen-vl-max", relay)
    assert [path for _, path, _ in relay.seen] == ["/v1/models/qwen-vl-max", "/v1/models", "/v1/chat/completions"]
