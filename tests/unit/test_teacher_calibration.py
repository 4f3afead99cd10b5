"""Estimates that learn from ``usage``, both ways, on a virtual clock.

The gate gives back what an answer shows it over-booked; an unknown model's image estimate is adopted
from the median of its first answers (said once in the log); a known family whose answers disagree
with the table is warned about. The last test drives the real client against a simulated relay that
bills Qwen's rule under a tokens-per-minute limit: after calibration the run reaches the throughput
its true usage allows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

from tests.support.fake_clock import FakeClock
from vqa_distill.teacher.endpoint import body
from vqa_distill.teacher.endpoint.client import ask
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ratelimit.calibration import CALIBRATION_SAMPLES, ImageCalibration
from vqa_distill.teacher.ratelimit.gate import RateGate

LOGGER = "vqa_distill.teacher"
TOKENS_RATE = 5900 / 60  # RateGate(..., 6000 TPM): a 100-token bucket draining 5,900 a minute


def waited(clock: FakeClock, gate: RateGate, tokens: int) -> float:
    """Acquire ``tokens`` and return how long the gate held the request (virtual seconds)."""
    started = clock.t
    asyncio.run(gate.acquire(tokens))
    return clock.t - started


# ----------------------------------------------------------------------------- settling both ways


def test_over_booked_tokens_are_given_back() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 6000, clock=clock)
    asyncio.run(gate.acquire(5000))  # a cautious estimate
    asyncio.run(gate.settle(5000, 300))  # the endpoint counted 300
    # Without the give-back the next request would wait (5000 - 50) / rate = 50.3 s.
    assert waited(clock, gate, 50) == pytest.approx((300 - 50) / TOKENS_RATE)


def test_a_give_back_never_leaves_credit_below_an_empty_bucket() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 6000, clock=clock)
    asyncio.run(gate.acquire(80))
    asyncio.run(gate.settle(5000, 10))  # more given back than the bucket holds
    assert waited(clock, gate, 100) == 0
    assert waited(clock, gate, 100) == pytest.approx(100 / TOKENS_RATE)  # no credit was kept beyond empty


def test_a_give_back_restores_the_endpoints_projected_allowance() -> None:
    clock = FakeClock()
    gate = RateGate(100_000, 6_000_000, clock=clock)  # its own bucket holds 100,000: never the limit here
    admitted = asyncio.run(gate.acquire(20_000))
    gate.observe({"x-ratelimit-remaining-tokens": "0"}, admitted)  # the endpoint has nothing left
    asyncio.run(gate.settle(20_000, 5_000))  # 15,000 of what it counted were given back
    assert waited(clock, gate, 10_000) == 0  # without the give-back: 10,000 / 100,000 per second


# ----------------------------------------------------------------------------- calibration


def test_an_unknown_model_adopts_the_median_of_its_first_answers_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    calibration = ImageCalibration("qwen-vl-max", trusted=False)
    assert calibration.image_tokens(1036, 756, 36_835) == 36_835  # cautious until measured
    # 39 text tokens each; one answer is an outlier (a relay's retry billed twice, say): the median ignores it.
    for prompt in (1039, 1040, 1042, 9000, 1038)[: CALIBRATION_SAMPLES - 1]:
        calibration.learn(1036, 756, prompt_tokens=prompt, text_tokens=39, ruled_tokens=36_835)
        assert calibration.tokens_per_pixel is None
    calibration.learn(1036, 756, prompt_tokens=1038, text_tokens=39, ruled_tokens=36_835)
    # image tokens 1000, 1001, 1003, 8961, 999: the median is 1,001 for 1036x756 px.
    assert calibration.image_tokens(1036, 756, 36_835) == 1001
    assert calibration.image_tokens(2072, 1512, 99_999) == 4004  # per pixel: four times the pixels
    for _ in range(10):
        calibration.learn(1036, 756, prompt_tokens=2000, text_tokens=39, ruled_tokens=36_835)  # settled: ignored
    assert calibration.image_tokens(1036, 756, 36_835) == 1001
    said = [r.getMessage() for r in caplog.records]
    assert said == ["qwen-vl-max: ~1,040 tokens per 1036×756 image measured; estimate adopted"]


def test_a_known_family_that_bills_otherwise_is_warned_about_naming_both_figures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    calibration = ImageCalibration("gpt-4o-mini", trusted=True)
    for _ in range(CALIBRATION_SAMPLES + 3):  # a relay that bills gpt-4o's 765 for gpt-4o-mini's 25,501
        calibration.learn(1024, 768, prompt_tokens=772, text_tokens=7, ruled_tokens=25_501)
    assert calibration.image_tokens(1024, 768, 25_501) == 25_501  # the table's rule is kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gpt-4o-mini: answers bill ~765 image tokens per 1024×768 image where the model table's rule says 25,501" in (
        warnings[0]
    )


def test_a_known_family_within_a_fifth_of_its_rule_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    calibration = ImageCalibration("gpt-4o", trusted=True)
    for _ in range(CALIBRATION_SAMPLES):
        calibration.learn(1024, 768, prompt_tokens=765 + 7 + 120, text_tokens=7, ruled_tokens=765)  # +16 %
    assert caplog.records == []


def test_each_model_learns_in_its_own_gate_entry() -> None:
    gate = RateGate(500, 200_000, clock=FakeClock())
    teacher = gate.calibration("qwen-vl-max", trusted=False)
    assert gate.calibration("qwen-vl-max", trusted=False) is teacher
    assert gate.calibration("gpt-4o", trusted=True) is not teacher


# ----------------------------------------------------------------------------- through the client


class SimulatedRelay:
    """An endpoint billing Qwen's rule under a TPM limit counted as the offline teacher does (prompt + cap).

    Its bucket holds one minute and refills continuously; a request it cannot hold is a 429 with a
    Retry-After. Time is the test's virtual clock.
    """

    PROMPT_TOKENS = 1001 + 39  # a 1036x756 image by Qwen's rule (37 x 27 + 2) and the text with its template

    def __init__(self, clock: FakeClock, tpm: int):
        self.clock, self.tpm = clock, tpm
        self.level, self.updated = float(tpm), clock.t
        self.answered: list[float] = []
        self.refused = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        sent = json.loads(request.content)
        counted = self.PROMPT_TOKENS + int(sent["max_tokens"])
        now = self.clock.t
        self.level = min(float(self.tpm), self.level + (now - self.updated) * self.tpm / 60)
        self.updated = now
        if self.level < counted:
            self.refused += 1
            wait = (counted - self.level) / (self.tpm / 60)
            return httpx2.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": f"{wait:.3f}"})
        self.level -= counted
        self.answered.append(now)
        usage = {"prompt_tokens": self.PROMPT_TOKENS, "completion_tokens": 60, "total_tokens": self.PROMPT_TOKENS + 60}
        return httpx2.Response(200, json=completion(usage))


def completion(usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A scratch."}, "finish_reason": "stop"}],
        "usage": usage,
    }  # fmt: skip


def test_an_unknown_model_at_a_relay_reaches_the_throughput_its_true_usage_allows(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's run: an unknown name, 1024x768 photos, 200,000 TPM. It made 8 requests a minute."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(body, "_WARNED", set())
    tpm, cap, total = 200_000, 1024, 200
    clock = FakeClock()
    relay = SimulatedRelay(clock, tpm)
    gate = RateGate(500, tpm, clock=clock)
    request = TeacherRequest(
        image_path="/x.jpg", rel_path="x.jpg", sha256="0" * 64, prompt="Describe the defects you can see." * 4,
        system=None, model="relay-vision-model", params={"detail": "auto", "max_pixels": 2_359_296, "max_tokens": cap},
    )  # fmt: skip
    image = PreparedImage(width=1036, height=756, original_width=1024, original_height=768, data_url="data:,")

    async def run() -> None:
        client = AsyncOpenAI(
            api_key="k", base_url="http://relay.invalid/v1", max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(relay)),
        )  # fmt: skip
        try:
            for _ in range(total):
                try:
                    await ask(client, gate, request, image)
                except Exception:  # a 429: the task would retry it
                    continue
        finally:
            await client.close()

    asyncio.run(run())
    after = relay.answered[CALIBRATION_SAMPLES:]
    achieved_per_min = (len(after) - 1) / (after[-1] - after[0]) * 60
    ideal_per_min = tpm / (SimulatedRelay.PROMPT_TOKENS + cap)  # 96.9: what the true usage and the TPM allow
    assert achieved_per_min >= 0.9 * ideal_per_min, (achieved_per_min, ideal_per_min)
    assert relay.refused <= 0.01 * total
    assert sum("estimate adopted" in r.getMessage() for r in caplog.records) == 1


def test_a_request_waiting_on_an_over_booked_estimate_goes_as_soon_as_it_is_given_back() -> None:
    """Real clock: the waiter would sleep ~10 s for the first request's cautious estimate; the answer
    comes back after 0.2 s and gives it back, and the waiter goes then, not 10 s later."""

    async def run() -> float:
        gate = RateGate(6000, 60_000)  # a 1,000-token bucket draining ~983 a second
        first = await gate.acquire(10_000)  # cautious: ten times the bucket
        started = time.monotonic()

        async def answer() -> None:
            await asyncio.sleep(0.2)
            await gate.settle(10_000, 1_100, first)  # the endpoint counted 1,100

        await asyncio.gather(gate.acquire(100), answer())
        return time.monotonic() - started

    assert asyncio.run(run()) < 2.0  # ~0.2 s of answer and ~0.1 s of drain; without the wake-up, ~10 s


def test_a_give_back_never_frees_what_later_requests_hold() -> None:
    """The bucket drains oldest first: a late give-back returns only what its request still holds."""
    clock = FakeClock()
    gate = RateGate(100_000, 6000, clock=clock)  # capacity 100, ~98.3 a second

    async def run() -> float:
        cautious = await gate.acquire(500)
        await gate.acquire(50)  # waits until 50 fit: the cautious one still holds 50 of the 100
        await gate.settle(500, 10, cautious)  # 490 over-booked, but only its remaining 50 can come back
        started = clock.t
        await gate.acquire(100)  # the 50 tokens just admitted still count
        return clock.t - started

    assert asyncio.run(run()) == pytest.approx(50 / TOKENS_RATE)
