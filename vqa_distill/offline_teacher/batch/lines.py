"""One batch input file: its validation, and the answer to each line by the same logic as online chat.

A line is answered with chat.py's own pieces, in its order (request shape, model rules, response
format, image decoding, billing, fault rules, reply, answer shaping), so a batch answer equals the
online answer to the same body. What online mode adds is left out on purpose: batch lines do not
count against the online RPM/TPM limits, wait no simulated latency, and do not appear in the online
request stats.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from vqa_distill.offline_teacher.batch.store import BatchSettings
from vqa_distill.offline_teacher.replies.reply import purpose_of, reply
from vqa_distill.offline_teacher.replies.structured import response_format_of
from vqa_distill.offline_teacher.routes.chat import (
    FAULT_MESSAGES,
    decode_and_measure,
    parse_messages,
    shape_answer,
)
from vqa_distill.offline_teacher.rules import billing
from vqa_distill.offline_teacher.rules.images import ImageRejected
from vqa_distill.offline_teacher.rules.params import parameter_error
from vqa_distill.offline_teacher.rules.schema import (
    ChatRequest,
    completion_body,
    validation_message,
)
from vqa_distill.offline_teacher.server.faults import HTTP_FAULT_STATUS, RequestView
from vqa_distill.offline_teacher.server.state import TeacherState

MAX_REPORTED_ERRORS = 10  # validation errors listed per refused file
SERVER_ERROR = (500, "The server had an error while processing your request.", "server_error")


@dataclass(frozen=True)
class InputLine:
    """One request of an input file."""

    custom_id: str
    body: dict[str, Any]


def _problem(line: int | None, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def read_input(
    data: bytes, endpoint: str, settings: BatchSettings
) -> tuple[list[InputLine], list[dict[str, Any]]]:
    """Parse and check an input file; return its lines, or the problems that refuse the whole file."""
    if settings.fail_validation:
        return [], [_problem(None, "invalid_request", settings.fail_validation)]
    if len(data) > settings.max_bytes:
        return [], [
            _problem(
                None,
                "file_too_large",
                f"The input file is {len(data)} bytes; at most {settings.max_bytes} are accepted.",
            )
        ]
    lines: list[InputLine] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            problems.append(
                _problem(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            )
            continue
        custom_id, body = item.get("custom_id") if isinstance(item, dict) else None, None
        if not isinstance(custom_id, str) or not custom_id:
            problems.append(
                _problem(number, "missing_required_parameter", "Missing 'custom_id'.", "custom_id")
            )
            continue
        if custom_id in seen:
            problems.append(
                _problem(number, "duplicate_custom_id", f"The custom_id {custom_id!r} is not unique.")
            )
            continue
        seen.add(custom_id)
        if item.get("method") != "POST" or item.get("url") != endpoint:
            problems.append(
                _problem(number, "invalid_url", f"Each line must be a POST to {endpoint}.", "url")
            )
            continue
        body = item.get("body")
        if not isinstance(body, dict):
            problems.append(_problem(number, "missing_required_parameter", "Missing 'body'.", "body"))
            continue
        models.add(str(body.get("model")))
        lines.append(InputLine(custom_id, body))
    if len(lines) > settings.max_requests:
        problems.append(
            _problem(
                None,
                "too_many_requests",
                f"The input file has {len(lines)} requests; at most {settings.max_requests} are accepted.",
            )
        )
    if len(models) > 1:
        problems.append(_problem(None, "mixed_models", "Every request of a batch must use the same model."))
    if not lines and not problems:
        problems.append(_problem(None, "empty_file", "The input file has no requests."))
    return lines, problems[:MAX_REPORTED_ERRORS]


def _error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _from_response(response: JSONResponse) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = json.loads(bytes(response.body))
    return response.status_code, body


async def answer_line(state: TeacherState, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Return ``(status code, response body)`` for one line, exactly as ``POST /v1/chat/completions`` would."""
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        message, param = validation_message(exc)
        return 400, _error_body(message, param=param)
    if chat.stream:
        return 400, _error_body("streaming not supported", param="stream", code="unsupported_parameter")
    if not state.serves(chat.model):
        return _from_response(state.model_missing(chat.model))
    refused = parameter_error(chat, body)
    if refused is not None:
        return _from_response(refused)
    response_format = response_format_of(chat)
    if isinstance(response_format, str):
        return 400, _error_body(response_format, param="response_format", code="invalid_value")
    try:
        parsed = parse_messages(chat)
        decoded = []
        if parsed.image_parts:
            loop = asyncio.get_running_loop()
            decoded = await loop.run_in_executor(state.executor, decode_and_measure, parsed.image_parts)
    except ImageRejected as exc:
        return 400, _error_body(exc.message, param="messages", code=exc.code)
    images = [image for image, _ in decoded]
    sizes = [(i.width, i.height, i.detail) for i in images]
    prompt_tokens = billing.prompt_tokens(chat.model, parsed.texts, sizes, state.image_rule(chat.model))
    view = RequestView(
        model=chat.model,
        user_text=parsed.user_text,
        system=parsed.system,
        fingerprints=tuple(i.fingerprint for i in images),
        image_sizes=tuple((i.width, i.height) for i in images),
        purpose=purpose_of(response_format),
    )
    fault = state.injector.pick(view)
    if fault is not None and fault.kind in HTTP_FAULT_STATUS:
        message, type_, code = FAULT_MESSAGES[fault.kind]
        return HTTP_FAULT_STATUS[fault.kind], _error_body(message, type_, code)
    if fault is not None and fault.kind in {"bad_json", "timeout"}:  # a line's worker failed: a 500 line
        status, message, type_ = SERVER_ERROR
        return status, _error_body(message, type_)
    answer = reply(
        response_format, [features for _, features in decoded], parsed.user_text, parsed.system, fault
    )
    content, finish = shape_answer(answer, chat.output_cap, fault)
    completion_tokens = billing.text_tokens(content or "")
    return 200, completion_body(chat.model, content, finish, prompt_tokens, completion_tokens)
