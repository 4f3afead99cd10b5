"""Which parameters each model accepts, refused with the API's own 400 wording.

Reasoning models (o-series, gpt-5, -mini, -nano) take ``max_completion_tokens`` and
``reasoning_effort`` and refuse ``max_tokens`` and any ``temperature`` but 1; other models take
``max_tokens`` or ``max_completion_tokens`` and refuse ``reasoning_effort``. Source: OpenAI's
reasoning guide, https://platform.openai.com/docs/guides/reasoning, and the API's error bodies.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from vqa_distill.offline_teacher.rules.families import is_reasoning
from vqa_distill.offline_teacher.rules.schema import ChatRequest, openai_error

REASONING_EFFORTS = ("minimal", "low", "medium", "high")
DEFAULT_TEMPERATURE = 1  # the only temperature a reasoning model accepts


def _quoted_list(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def parameter_error(chat: ChatRequest, body: dict[str, Any]) -> JSONResponse | None:
    """Return the 400 the API gives for a parameter ``chat.model`` does not accept, or None."""
    if is_reasoning(chat.model):
        return _reasoning_error(chat, body)
    if chat.reasoning_effort is not None:
        return openai_error(
            400,
            "Unrecognized request argument supplied: reasoning_effort",
            param="reasoning_effort",
            code="unsupported_parameter",
        )
    return None


def _reasoning_error(chat: ChatRequest, body: dict[str, Any]) -> JSONResponse | None:
    if body.get("max_tokens") is not None:
        return openai_error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    if chat.temperature is not None and chat.temperature != DEFAULT_TEMPERATURE:
        shown = json.dumps(body.get("temperature"))  # as the caller wrote it: 0.2, 0, 0.0
        return openai_error(
            400,
            f"Unsupported value: 'temperature' does not support {shown} with this model. "
            f"Only the default ({DEFAULT_TEMPERATURE}) value is supported.",
            param="temperature",
            code="unsupported_value",
        )
    effort = chat.reasoning_effort
    if effort is not None and effort not in REASONING_EFFORTS:
        return openai_error(
            400,
            f"Invalid value: '{effort}'. Supported values are: {_quoted_list(REASONING_EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return None
