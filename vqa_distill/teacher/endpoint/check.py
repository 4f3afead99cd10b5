"""Check key, endpoint and model before a run, at no cost where the endpoint allows: plain messages, one each.

``GET /models/{model}`` costs nothing. Relays and self-hosted servers often lack that route: a 404
without OpenAI's ``model_not_found`` code means the route is missing, not the model. Then the model
list (``GET /models``, which vLLM and SGLang do serve) is read, also free; a model it names is
enough. Otherwise one minimal chat call is sent as the model's rules require, and only a clear
answer refuses the run: a refused key, ``model_not_found``, a quota spent, or a 404 from an endpoint
whose own list lacks the model too. A 404 that says no more is said once and the run goes on: the
run's own requests will tell.

A wrong key, an unknown model, an unreachable endpoint and a spent quota are four different fatal
errors, each said once, with the key redacted.
"""

from __future__ import annotations

from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types import Model

from vqa_distill.errors import (
    PermanentTeacherError,
    TeacherAuthError,
    TeacherModelError,
    TeacherUnreachableError,
)
from vqa_distill.teacher.endpoint.client import (
    connection_reason,
    error_code,
    redact,
    rules_for,
    translate_error,
)
from vqa_distill.teacher.endpoint.failures import quota_error, quota_spent
from vqa_distill.teacher.run_log import run_logger

MODEL_NOT_FOUND_CODE = "model_not_found"
CHECK_PROMPT = "Reply with OK."
CHECK_OUTPUT_CAP = 1  # tokens: the fallback check only needs the endpoint to accept the call
CHECK_REASONING_OUTPUT_CAP = 16  # tokens: reasoning models may refuse a cap too small to answer in
LISTED_SHOWN = 5  # model names quoted from the endpoint's list when it lacks the one asked for


async def check_endpoint(client: AsyncOpenAI, model: str) -> None:
    """Check key, endpoint and model before a run; raise a FatalRunError saying which one is wrong.

    Asks ``GET /models/{model}``, which costs nothing. An endpoint that does not serve that route
    (404 without ``model_not_found``, 405, 501, or an answer that is not a model) is asked its list
    of models, then, when that does not name the model, one minimal chat call.
    """
    try:
        found = await client.models.retrieve(model)
        if isinstance(found, Model) and getattr(found, "id", None) == model:  # not a proxy's page served with 200
            return
    except openai.AuthenticationError as exc:
        raise _key_refused(client, exc) from None
    except openai.PermissionDeniedError as exc:
        raise _model_refused(client, model, exc) from None
    except openai.APIConnectionError as exc:  # timeouts included
        raise _unreachable(client, exc) from None
    except openai.NotFoundError as exc:
        if error_code(exc) == MODEL_NOT_FOUND_CODE:
            raise _model_unknown(client, model) from None
    except Exception:  # any other answer says nothing decisive: ask the list, then the chat route
        pass
    listed = await _listed_models(client)
    if listed is not None and model in listed:
        return
    await _check_with_chat_call(client, model, listed)


async def _listed_models(client: AsyncOpenAI) -> list[str] | None:
    """Return the ids of ``GET /models``, or None when the endpoint does not list its models."""
    try:
        page = await client.models.list()
        return [str(getattr(entry, "id", "")) for entry in page.data]
    except openai.AuthenticationError as exc:
        raise _key_refused(client, exc) from None
    except openai.APIConnectionError as exc:
        raise _unreachable(client, exc) from None
    except Exception:  # no list, or not one: the chat call decides
        return None


async def _check_with_chat_call(client: AsyncOpenAI, model: str, listed: list[str] | None) -> None:
    """Make one tiny text-only call, as the model's rules require; raise a FatalRunError only when it is clear."""
    spec = rules_for(model)
    cap: dict[str, Any] = {
        spec.output_cap_parameter: CHECK_REASONING_OUTPUT_CAP if spec.reasoning else CHECK_OUTPUT_CAP
    }
    try:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": CHECK_PROMPT}], **cap
        )
    except openai.AuthenticationError as exc:
        raise _key_refused(client, exc) from None
    except openai.PermissionDeniedError as exc:
        raise _model_refused(client, model, exc) from None
    except openai.NotFoundError as exc:
        _not_found_at_the_call(client, model, exc, listed)
    except openai.APIConnectionError as exc:
        raise _unreachable(client, exc) from None
    except openai.RateLimitError as exc:
        if quota_spent(exc):
            raise quota_error(str(client.base_url), client.api_key) from None
        # Any other 429 says the endpoint and key work: go on, the run paces itself.
    except Exception as exc:
        error = translate_error(exc, api_key=client.api_key)
        if isinstance(error, PermanentTeacherError):
            raise TeacherModelError(
                redact(f"the endpoint rejected a test call for model {model!r}: {error}", client.api_key)
            ) from None
        # A transient error (5xx, a timeout) says the endpoint and key work: go on.


def _not_found_at_the_call(client: AsyncOpenAI, model: str, exc: openai.NotFoundError, listed: list[str] | None) -> None:
    """A 404 to the test call: fatal when it says the model is unknown, or the endpoint's list agrees; else go on."""
    if error_code(exc) == MODEL_NOT_FOUND_CODE:
        raise _model_unknown(client, model) from None
    if listed:  # the endpoint lists its models (vLLM, SGLang), and not this one
        raise _model_unknown(client, model, listed) from None
    run_logger().warning(
        "the endpoint %s answered 404 to a test call for model %r without saying the model is unknown (no "
        "%s): going on; if the run's requests fail with 404 too, check --base-url",
        client.base_url, model, MODEL_NOT_FOUND_CODE,
    )  # fmt: skip


def _key_refused(client: AsyncOpenAI, exc: openai.APIStatusError) -> TeacherAuthError:
    return TeacherAuthError(
        redact(
            f"the endpoint {client.base_url} refused the API key (HTTP {exc.status_code}): "
            "check OPENAI_API_KEY or the Secret block",
            client.api_key,
        )
    )


def _model_refused(client: AsyncOpenAI, model: str, exc: openai.APIStatusError) -> TeacherAuthError:
    return TeacherAuthError(
        redact(f"the API key may not use model {model!r} at {client.base_url} (HTTP {exc.status_code})", client.api_key)
    )


def _model_unknown(client: AsyncOpenAI, model: str, listed: list[str] | None = None) -> TeacherModelError:
    offered = ""
    if listed:
        more = f" and {len(listed) - LISTED_SHOWN} more" if len(listed) > LISTED_SHOWN else ""
        offered = f"; it serves {', '.join(repr(m) for m in listed[:LISTED_SHOWN])}{more}"
    return TeacherModelError(
        redact(f"the endpoint {client.base_url} does not serve model {model!r} (HTTP 404){offered}", client.api_key)
    )


def _unreachable(client: AsyncOpenAI, exc: openai.APIConnectionError) -> TeacherUnreachableError:
    return TeacherUnreachableError(
        redact(f"cannot reach the endpoint {client.base_url}: {connection_reason(exc)}", client.api_key)
    )
