"""The offline teacher's RPM/TPM buckets and OpenAI-style durations, on a clock the test controls."""

from __future__ import annotations

import pytest

from vqa_distill.offline_teacher.rules.limits import RateLimiter, format_duration, format_seconds


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.12, "120ms"),
        (0.0004, "1ms"),  # rounded up: waiting less would be too early
        (1.0, "1s"),
        (7.65, "7.65s"),
        (59.9994, "1m0s"),
        (60.0, "1m0s"),
        (90.5, "1m30.5s"),
        (360.0, "6m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_durations_read_like_openais_headers(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_retry_after_is_fractional_seconds() -> None:
    assert [format_seconds(s) for s in (1.25, 2.0, 0.0001, 41.9934)] == ["1.25", "2", "0.001", "41.994"]


def test_tokens_refill_continuously_and_refusals_consume_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=600, clock=clock)  # 10 tokens per second
    assert limiter.admit("gpt-4o", 550) is None
    refusal = limiter.admit("gpt-4o", 60)
    assert refusal is not None and refusal.kind == "tokens"
    assert (refusal.limit, refusal.used, refusal.requested) == (600, 550, 60)
    assert refusal.retry_after_s == pytest.approx(1.0)
    assert refusal.headers() == {"retry-after": "1", "retry-after-ms": "1000"}
    assert refusal.message("gpt-4o") == (
        "Rate limit reached for gpt-4o in organization org-offline on tokens per min (TPM): "
        "Limit 600, Used 550, Requested 60. Please try again in 1s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    assert limiter.headers("gpt-4o") == {  # the refusal took nothing
        "x-ratelimit-limit-tokens": "600",
        "x-ratelimit-remaining-tokens": "50",
        "x-ratelimit-reset-tokens": "55s",
    }
    clock.now += 0.5
    assert limiter.admit("gpt-4o", 60) is not None  # 55 tokens: still short
    clock.now += 0.5
    assert limiter.admit("gpt-4o", 60) is None  # exactly when Retry-After said
    clock.now += 3600
    assert limiter.headers("gpt-4o")["x-ratelimit-remaining-tokens"] == "600"  # never above the limit


def test_requests_limit_and_the_longer_wait_is_reported() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=2, tpm=6000, clock=clock)  # 1 request per 30 s, 100 tokens per second
    assert limiter.admit("gpt-4o", 100) is None
    assert limiter.admit("gpt-4o", 100) is None
    refusal = limiter.admit("gpt-4o", 100)
    assert refusal is not None and refusal.kind == "requests"
    assert (refusal.limit, refusal.used, refusal.requested, refusal.retry_after_s) == (2, 2, 1, 30.0)
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in 30s." in (
        refusal.message("gpt-4o")
    )
    headers = limiter.headers("gpt-4o")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["x-ratelimit-remaining-tokens"] == "5800"
    assert limiter.admit("gpt-4.1", 100) is None  # every model has its own buckets
    clock.now += 30
    tokens_short = limiter.admit("gpt-4o", 9000)  # over the whole limit: waiting cannot help
    assert tokens_short is not None and tokens_short.retry_after_s is None and tokens_short.headers() == {}
    assert tokens_short.message("gpt-4o").startswith(
        "Request too large for gpt-4o in organization org-offline on tokens per min (TPM): "
        "Limit 6000, Requested 9000."
    )


def test_no_limits_admit_everything_and_send_no_headers() -> None:
    limiter = RateLimiter()
    assert not limiter.enabled
    assert all(limiter.admit("gpt-4o", 10**9) is None for _ in range(100))
    assert limiter.headers("gpt-4o") == {}
    limiter.configure(rpm=5, tpm=None)
    assert limiter.enabled and set(limiter.headers("gpt-4o")) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
    assert limiter.snapshot() == {"rpm": 5, "tpm": None, "remaining": {"gpt-4o": {"requests": 5}}}
