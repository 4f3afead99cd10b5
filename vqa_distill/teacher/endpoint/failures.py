"""The one error-translation boundary: every ``openai`` exception becomes one of the project's errors.

- transient (retried by Prefect): 408, 409, 429, 5xx, timeouts, connection drops, a 200 that is not JSON;
  an overload answer (``overloaded``: a timeout, a 503 without Retry-After) of an endpoint without
  rate-limit headers is first asked again inside ``ask`` (``client.py``)
- permanent for one image (recorded, not retried): 400, 404/413/422 on a request, other 4xx
- fatal for the run: a 429 whose code is ``insufficient_quota`` (the account's credit is spent: no
  retry helps); and at the endpoint check, a refused key, an unreachable endpoint, an unknown model

Messages are short and never hold the API key.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC

import openai

from vqa_distill.errors import PermanentTeacherError, TeacherAuthError, TeacherError, TransientTeacherError
from vqa_distill.secrecy import mask

TRANSIENT_STATUS_CODES = frozenset({408, 409, 429})
QUOTA_CODE = "insufficient_quota"  # OpenAI's 429 when the account's credit is spent: waiting never helps
MAX_ERROR_MESSAGE_CHARS = 500
REDACTED = "[REDACTED]"
MAX_OVERLOAD_RETRIES = 5  # overload answers of a self-hosted server asked again inside ``ask``, per image
OVERLOAD_BACKOFF_S = 0.5  # first wait after an overload answer; doubles per answer, up to the cap
OVERLOAD_BACKOFF_CAP_S = 8.0
MIN_KEY_CHARS = 4  # a shorter key (``x`` for a local server) guards nothing: masking it would garble every message


def translate_error(exc: BaseException, *, api_key: str | None = None) -> TeacherError:
    """Map an exception from the openai client to a TeacherError with a short, key-free message."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientTeacherError("the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientTeacherError(f"connection failed: {connection_reason(exc)}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = redact(f"HTTP {status}: {_api_message(exc)}", api_key)
        retry_after = parse_retry_after(exc.response.headers)
        if status in TRANSIENT_STATUS_CODES or status >= 500:
            return TransientTeacherError(message, status_code=status, retry_after=retry_after)
        return PermanentTeacherError(message, status_code=status)
    if isinstance(exc, ValueError | openai.APIResponseValidationError):  # JSONDecodeError is a ValueError
        return TransientTeacherError(f"the endpoint's response was not valid JSON ({type(exc).__name__})")
    return PermanentTeacherError(redact(f"{type(exc).__name__}: {exc}", api_key))


def overloaded(exc: BaseException) -> bool:
    """Return whether ``exc`` says the server is at capacity: a timeout, or a 503 without Retry-After.

    A 503 with Retry-After is the endpoint saying when to come back: the gate's hold follows it instead.
    """
    if isinstance(exc, openai.APITimeoutError):
        return True
    return (
        isinstance(exc, openai.APIStatusError)
        and exc.status_code == 503
        and parse_retry_after(exc.response.headers) is None
    )


def overload_backoff(overloads: int) -> float:
    """Return the seconds to wait after the ``overloads``-th overload answer of one request (0 first)."""
    return float(min(OVERLOAD_BACKOFF_CAP_S, OVERLOAD_BACKOFF_S * 2**overloads))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the delay ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date) asks for, in seconds.

    Garbage, negative or non-finite values are ignored (None); a date in the past is 0.
    """
    milliseconds = _finite_non_negative(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_non_negative(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" means UTC without saying where
        parsed = parsed.replace(tzinfo=UTC)
    return max(0.0, parsed.timestamp() - time.time())


def _finite_non_negative(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def redact(text: str, secret: str | None) -> str:
    """Remove the API key (and any echo of it) from a message before it is logged or stored."""
    return mask(text, secret, mark=REDACTED, min_chars=MIN_KEY_CHARS)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:MAX_ERROR_MESSAGE_CHARS]
    return (exc.message or exc.response.reason_phrase or "error")[:MAX_ERROR_MESSAGE_CHARS]


def error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code is not None else None


def connection_reason(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)


def quota_spent(exc: BaseException) -> bool:
    """Return whether ``exc`` is a 429 saying the account's quota is spent (code or type ``insufficient_quota``)."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code != 429:
        return False
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    return isinstance(error, dict) and QUOTA_CODE in (error.get("code"), error.get("type"))


def quota_error(base_url: str, api_key: str | None) -> TeacherAuthError:
    """Return the run's one line about a spent quota: fatal, as a refused key is."""
    return TeacherAuthError(
        redact(
            f"the endpoint {base_url} refuses requests: the account's quota is spent ({QUOTA_CODE}); "
            "check the plan and billing of the account behind the API key",
            api_key,
        )
    )
