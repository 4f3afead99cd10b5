"""One rate limit for every worker that asks the same endpoint and model, kept in Redis.

The buckets are ``gate.py``'s (``BucketShape``: capacity = burst, drain at (limit - capacity)/60, so
no 60-second window admits more than the limit), but their levels live in one Redis hash that every
worker updates with ONE Lua script per request, atomically for both buckets and on Redis' clock
(``TIME``): it drains them by the time elapsed, computes when this request fits both (an amount above
capacity fits an empty bucket), and RESERVES that moment by adding the amounts, debt allowed. The
caller sleeps the returned wait and goes: no polling loop, no herd waking at once, and no static
split of the limit (a worker that stops simply stops reserving; the others get its share at once).

Why a reservation is booked at the common admission time ``now + wait`` in both buckets: a request
the token bucket holds back is sent later than the request bucket alone would have let it, and if
that bucket still thought it went early, the requests it held would leave together and break the
request limit. Booked at the same moment in both, the bound ``capacity + rate x W`` holds for any
window of W seconds in each bucket (the GCRA argument: each booking moves a bucket's "theoretical
arrival time" forward by amount / rate, and never beyond admission + capacity / rate).

Redis is chosen over Prefect's global concurrency limits (``rate_limit``): one round trip per request
instead of an API call plus a database transaction on the very server the workers should spare, and
it keeps working while that server restarts (docs/rate-limits.md has the measurements).

The URL holds a password, so it is never a parameter: it comes from ``VQA_DISTILL_REDIS_URL``, and
every message names ``host:port`` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vqa_distill.errors import FatalRunError, TransientTeacherError
from vqa_distill.secrecy import masked_reason, url_secrets
from vqa_distill.teacher.ratelimit.buckets import DEFAULT_BURST_SECONDS, BucketShape
from vqa_distill.teacher.run_log import run_logger

REDIS_URL_ENV = "VQA_DISTILL_REDIS_URL"
KEY_PREFIX = "vqa-distill:limit:"
DEFAULT_ENDPOINT = "https://api.openai.com/v1"  # what the openai client uses when base_url is None
REDIS_TIMEOUT_S = 2.0  # connect and reply; a reservation is ~0.2 ms on a LAN
REDIS_RETRIES = 2  # a reply lost after the script ran books twice: slower, never over the limit
STATE_TTL_SLACK_MS = 60_000  # state outlives the time its buckets take to drain by this much

# KEYS[1]: the state hash. ARGV: mode ("reserve" | "charge"), TTL slack in ms, then amount, capacity
# and rate per second of the requests bucket (3..5) and of the tokens bucket (6..8).
# Returns the seconds to wait, as a string (Redis would truncate a Lua number to an integer).
_SCRIPT = """
local mode = ARGV[1]
local slack_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'at', 'requests', 'tokens')
local elapsed = math.max(0, now - (tonumber(state[1]) or now)) / 1000000
local level, amount, rate = {}, {}, {}
local wait = 0
for i = 1, 2 do
  local base = 3 * i
  amount[i] = tonumber(ARGV[base])
  local capacity = tonumber(ARGV[base + 1])
  rate[i] = tonumber(ARGV[base + 2])
  level[i] = math.max(0, (tonumber(state[i + 1]) or 0) - elapsed * rate[i])
  if mode == 'reserve' then
    local excess = level[i] - math.max(0, capacity - amount[i])
    if excess > 0 then wait = math.max(wait, excess / rate[i]) end
  end
end
local drain_ms = 0
for i = 1, 2 do
  -- booked at now + wait: the bucket drains until then, then takes the amount (a give-back: never below empty)
  level[i] = math.max(0, math.max(level[i], wait * rate[i]) + amount[i])
  drain_ms = math.max(drain_ms, level[i] / rate[i] * 1000)
end
redis.call('HSET', KEYS[1], 'at', string.format('%.17g', now),
  'requests', string.format('%.17g', level[1]), 'tokens', string.format('%.17g', level[2]))
redis.call('PEXPIRE', KEYS[1], math.ceil(drain_ms + slack_ms))
return string.format('%.17g', wait)
"""


def limit_key(base_url: str | None, model: str) -> str:
    """Return the Redis key of the limit shared by every worker asking ``model`` at ``base_url``."""
    endpoint = (base_url or DEFAULT_ENDPOINT).rstrip("/")
    digest = hashlib.sha1(f"{endpoint}|{model}".encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{KEY_PREFIX}{digest}"


def redis_location(url: str) -> str:
    """Return where ``url`` points as ``host:port`` (or the socket path): never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or 'localhost'}:{port}"


class GlobalGate:
    """Requests and tokens per minute for all workers together (see the module docstring)."""

    def __init__(self, url: str, key: str, rpm: int, tpm: int, *, burst_seconds: float = DEFAULT_BURST_SECONDS):
        """Prepare a gate on ``url`` (not connected until used: ``connect`` checks it at once)."""
        self.key = key
        self.where = redis_location(url)
        self._secrets = url_secrets(url)  # its password, to mask in messages (the URL itself is not kept)
        self._shapes = (BucketShape.for_limit(float(rpm), burst_seconds), BucketShape.for_limit(float(tpm), burst_seconds))
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.02), REDIS_RETRIES),
        )  # fmt: skip
        self._script = self._client.register_script(_SCRIPT)

    def __repr__(self) -> str:
        return f"GlobalGate(redis={self.where}, key={self.key})"

    @classmethod
    async def connect(
        cls, url: str, *, base_url: str | None, model: str, rpm: int, tpm: int,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
    ) -> GlobalGate:  # fmt: skip
        """Return a gate for ``model`` at ``base_url`` once Redis answers; FatalRunError when it does not."""
        gate = cls(url, limit_key(base_url, model), rpm, tpm, burst_seconds=burst_seconds)
        try:
            await gate._client.ping()
        except (RedisError, OSError) as exc:
            await gate.aclose()
            raise FatalRunError(f"the global rate limit's Redis at {gate.where} {gate._reason(exc)}") from None
        return gate

    async def reserve(self, tokens: int) -> float:
        """Book one request of ``tokens`` at the first moment both limits allow; return the seconds until then."""
        return float(await self._run("reserve", 1.0, float(tokens)))

    async def acquire(self, tokens: int) -> float:
        """Reserve, then wait for the booked moment; return the seconds waited."""
        wait = await self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def charge(self, extra_tokens: int) -> None:
        """Add the tokens ``usage`` showed beyond the estimate, or give back (negative) what it over-booked; never raises.

        The answer is in and paid for when this runs: a lost correction must not fail it, so an error
        is one warning and the next reservations see a little more or less debt than there is.
        """
        if extra_tokens == 0:
            return
        try:
            await self._run("charge", 0.0, float(extra_tokens))
        except TransientTeacherError as exc:
            run_logger().warning("rate limit: a correction of %d tokens not made to the global limit: %s", extra_tokens, exc)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _run(self, mode: str, requests: float, tokens: float) -> Any:
        rq, tk = self._shapes
        args: list[str | float] = [mode, STATE_TTL_SLACK_MS, requests, rq.capacity, rq.rate_per_second, tokens, tk.capacity, tk.rate_per_second]
        try:
            return await self._script(keys=[self.key], args=args)
        except (RedisError, OSError) as exc:
            raise TransientTeacherError(f"global rate limit: Redis at {self.where} {self._reason(exc)}") from None

    def _reason(self, exc: BaseException) -> str:
        """Say what went wrong in words that never hold the password."""
        if isinstance(exc, AuthenticationError) or (isinstance(exc, ResponseError) and "NOAUTH" in str(exc)):
            return "refused the password in " + REDIS_URL_ENV
        text = masked_reason(exc, *self._secrets)
        unreachable = isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))
        return f"{'is unreachable' if unreachable else 'failed'} ({text})"


async def open_global_gate(*, base_url: str | None, model: str, rpm: int, tpm: int) -> GlobalGate | None:
    """Return the global gate when ``VQA_DISTILL_REDIS_URL`` is set, else None (one process, one local gate)."""
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        return None
    return await GlobalGate.connect(url, base_url=base_url, model=model, rpm=rpm, tpm=tpm)
