"""How the global gate words a Redis failure: host and port, one line, never the password (no Redis needed)."""

from __future__ import annotations

import pytest
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from vqa_distill.teacher.ratelimit.global_gate import GlobalGate

URL = "redis://:p%40ss-w0rd-long@10.0.0.7:6380/0"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RedisConnectionError("Error 111 connecting to redis://:p%40ss-w0rd-long@10.0.0.7:6380. Refused."),
         "is unreachable (Error 111 connecting to redis://:***@10.0.0.7:6380. Refused.)"),
        (ResponseError("ERR wrong pass p@ss-w0rd-long\nsecond line"), "failed (ERR wrong pass ***)"),
        (AuthenticationError("invalid username-password pair"), "refused the password in VQA_DISTILL_REDIS_URL"),
        (ResponseError("NOAUTH Authentication required."), "refused the password in VQA_DISTILL_REDIS_URL"),
        (OSError(), "is unreachable (OSError)"),
    ],
)
async def test_a_failure_is_said_in_one_line_without_the_password(error: Exception, said: str) -> None:
    gate = GlobalGate(URL, "vqa-distill:limit:test", rpm=60, tpm=1000)  # not connected until used
    try:
        assert gate._reason(error) == said
        assert gate.where == "10.0.0.7:6380"
    finally:
        await gate.aclose()
