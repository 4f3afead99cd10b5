"""What one request says: the chat messages, and the parameters its model accepts, each as that model takes it.

Each request follows its model's rules (``vqa_distill.teacher.endpoint.models``): the answer cap goes out
as the parameter the model accepts, ``temperature`` only where accepted (capped where the model takes
less), ``reasoning_effort`` only where accepted. Online requests and Batch API lines are built here
alike, and the rate gate's estimate of a request is made here too. What is dropped or changed is
said once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vqa_distill.teacher.endpoint.models import ModelSpec, model_spec
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.endpoint.tokens import text_tokens
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ratelimit.calibration import CALIBRATION_SAMPLES, ImageCalibration
from vqa_distill.teacher.run_log import run_logger

_WARNED: set[tuple[str, str]] = set()  # (what, model) already warned about in this process


def build_messages(request: TeacherRequest, image: PreparedImage) -> list[dict[str, Any]]:
    """Return the chat messages: optional system prompt, then the image and the prompt in one user turn."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    detail = request.params.get("detail", "auto")
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image.data_url, "detail": detail}},
                {"type": "text", "text": request.prompt},
            ],
        }
    )
    return messages


def rules_for(model: str) -> ModelSpec:
    """Return the model's rules; warn once per process when the table does not know the model."""
    spec = model_spec(model)
    if not spec.known:
        _warn_once(
            "unknown model", model,
            "model %r is not in the model table: image tokens are estimated with the most expensive rule "
            "(%s) until its first %d answers measure them, and parameters are sent as for chat models; "
            "see docs/models.md",
            model, spec.image_rule.describe(), CALIBRATION_SAMPLES,
        )  # fmt: skip
    return spec


def estimate_tokens(
    request: TeacherRequest,
    image: PreparedImage,
    spec: ModelSpec | None = None,
    calibration: ImageCalibration | None = None,
) -> int:
    """Estimate the tokens a request counts against the TPM limit: prompt text + image + answer cap.

    ``calibration`` replaces the rule's image estimate once it measured the model (an unknown one).
    """
    image_cost = ruled_image_tokens(request, image, spec)
    if calibration is not None:
        image_cost = calibration.image_tokens(image.width, image.height, image_cost)
    return image_cost + prompt_text_tokens(request) + answer_cap(request)


def ruled_image_tokens(request: TeacherRequest, image: PreparedImage, spec: ModelSpec | None = None) -> int:
    """Return the image's tokens by the model's rule (for an unknown model, the cautious rule)."""
    spec = spec or rules_for(request.model)
    return spec.image_tokens(image.width, image.height, request.params.get("detail", "auto"))


def prompt_text_tokens(request: TeacherRequest) -> int:
    """Estimate the tokens of the request's text: the prompt and the system prompt."""
    return text_tokens(request.prompt) + text_tokens(request.system or "")


def answer_cap(request: TeacherRequest) -> int:
    """Return the answer cap in tokens (0 when none is sent)."""
    return int(request.params.get("max_tokens") or 0)


def counted_tokens(request: TeacherRequest, prompt_tokens: int, completion_tokens: int) -> int:
    """Return what the endpoint counted against its TPM: the prompt, and the answer cap in full.

    The endpoint books the cap before any answer exists (OpenAI's rate-limit guide), so an answer
    shorter than the cap gives nothing back; one longer (no cap sent) counts what it used.
    """
    return prompt_tokens + max(answer_cap(request), completion_tokens)


def request_options(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the generation parameters to send, as ``spec``'s model accepts them (warning once per drop)."""
    options: dict[str, Any] = {}
    if params.get("max_tokens") is not None:
        options[spec.output_cap_parameter] = params["max_tokens"]
    if params.get("temperature") is not None:
        if spec.accepts_temperature:
            options["temperature"] = _temperature(spec, params["temperature"])
        else:
            _warn_once("temperature", spec.family, "%s does not accept temperature: sent without it", spec.family)
    wanted = params.get("reasoning_effort")
    if wanted is not None:
        effort = spec.effort_for(wanted)
        if effort is None:
            _warn_once(
                "reasoning_effort", spec.family,
                "%s takes no reasoning_effort (reasoning models only): sent without it", spec.family,
            )  # fmt: skip
        else:
            if effort != wanted:
                _warn_once(
                    "reasoning_effort", spec.family,
                    "%s takes no reasoning_effort %r: sent %r", spec.family, wanted, effort,
                )  # fmt: skip
            options["reasoning_effort"] = effort
    if params.get("response_format") is not None:  # structured outputs: question lists, judge scores
        if not spec.honours_response_format:
            _warn_once(
                "response_format", spec.family,
                "%s ignores response_format at this endpoint: its question lists and scores are checked when "
                "read, and an answer that is not the JSON asked for is recorded as unusable", spec.family,
            )  # fmt: skip
        options["response_format"] = params["response_format"]
    return options


def _temperature(spec: ModelSpec, wanted: float) -> float:
    """Return ``wanted``, capped where the model takes less (warning once)."""
    if spec.max_temperature is None or wanted <= spec.max_temperature:
        return wanted
    _warn_once(
        "temperature", spec.family, "%s takes temperature up to %g: sent %g instead of %g",
        spec.family, spec.max_temperature, spec.max_temperature, wanted,
    )  # fmt: skip
    return spec.max_temperature


def request_body(request: TeacherRequest, image: PreparedImage, spec: ModelSpec | None = None) -> dict[str, Any]:
    """Return the chat completion body of ``request``, model rules included: online and batch send the same."""
    return {
        "model": request.model,
        "messages": build_messages(request, image),
        **request_options(spec or rules_for(request.model), request.params),
    }


def _warn_once(what: str, model: str, message: str, *args: Any) -> None:
    """Log ``message`` as a warning the first time ``what`` happens for ``model`` in this process."""
    if (what, model) in _WARNED:
        return
    _WARNED.add((what, model))
    run_logger().warning(message, *args)
