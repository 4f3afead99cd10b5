"""What an answer's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` headers say, parsed.

OpenAI sends them on every response; the rate gate follows them to slow down before the endpoint
says no. Reset times come in OpenAI's duration format ("120ms", "6m0s", "1m30.5s").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["requests", "tokens"]
KINDS: tuple[Kind, ...] = ("requests", "tokens")
# OpenAI's durations: "120ms", "1s", "6m0s", "1m30.5s", "2h0m0s", "0.5s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_DURATION_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | None) -> float | None:
    """Return seconds of an OpenAI reset duration ("120ms", "6m0s", "1m30.5s", "2.5"), or None."""
    if text is None:
        return None
    text = text.strip().lower()
    try:
        return max(0.0, float(text))  # a bare number is seconds
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _DURATION_UNIT_S[unit] for number, unit in parts)


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """One limit as an answer's ``x-ratelimit-*-{kind}`` headers describe it (None: header absent)."""

    limit: float | None
    remaining: float | None
    reset_s: float | None

    @classmethod
    def parse(cls, headers: Mapping[str, str], kind: Kind) -> RateLimitHeaders | None:
        """Return the headers of ``kind``, or None when the answer has no usable ``remaining``."""
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        if remaining is None:
            return None
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        return cls(limit, remaining, parse_duration(headers.get(f"x-ratelimit-reset-{kind}")))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None
