"""Check key, endpoint and model before a run, at no cost where the endpoint allows: three plain messages.

``GET /models/{model}`` costs nothing; an endpoint that does not serve it gets one minimal chat call
sent as the model's rules require. A wrong key, an unknown model and an unreachable endpoint are
three different fatal errors, each said once, with the key redacted.
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

MODEL_NOT_FOUND_CODE = "model_not_found"
CHECK_PROMPT = "Reply with OK."
CHECK_OUTPUT_CAP = 1  # tokens: the fallback check only needs the endpoint to accept the call
CHECK_REASONING_OUTPUT_CAP = 16  # tokens: reasoning models may refuse a cap too small to answer in


async def check_endpoint(client: AsyncOpenAI, model: str) -> None:
    """Check key, endpoint and model before a run; raise a FatalRunError saying which one is wrong.

    Asks ``GET /models/{model}``, which costs nothing. An endpoint that does not serve that route
    (404 without ``model_not_found``, 405, 501, or an answer that is not a model) gets one minimal
    chat call instead, sent as the model's rules require.
    """
    try:
        found = await client.models.retrieve(model)
        if isinstance(found, Model):  # not a proxy's page served with 200
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
    except Exception:  # any other answer says nothing decisive: ask the chat route instead
        pass
    await _check_with_chat_call(client, model)


async def _check_with_chat_call(client: AsyncOpenAI, model: str) -> None:
    """Make one tiny text-only call, as the model's rules require; raise a FatalRunError when it says no."""
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
    except openai.NotFoundError:
        raise _model_unknown(client, model) from None
    except openai.APIConnectionError as exc:
        raise _unreachable(client, exc) from None
    except Exception as exc:
        error = translate_error(exc, api_key=client.api_key)
        if isinstance(error, PermanentTeacherError):
            raise TeacherModelError(
                redact(f"the endpoint rejected a test call for model {model!r}: {error}", client.api_key)
            ) from None
        # A transient error (429, 5xx) says the endpoint and key work: go on.


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


def _model_unknown(client: AsyncOpenAI, model: str) -> TeacherModelError:
    return TeacherModelError(
        redact(f"the endpoint {client.base_url} does not serve model {model!r} (HTTP 404)", client.api_key)
    )


def _unreachable(client: AsyncOpenAI, exc: openai.APIConnectionError) -> TeacherUnreachableError:
    return TeacherUnreachableError(
        redact(f"cannot reach the endpoint {client.base_url}: {connection_reason(exc)}", client.api_key)
    )
