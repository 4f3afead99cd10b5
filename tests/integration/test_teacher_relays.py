"""Teachers behind a relay, end to end: the real flow and client against the offline teacher's relay mode.

The relay serves DashScope's, Google's and Anthropic's names, bills each image by its family's own
published rule, has no ``GET /v1/models/{id}`` (a plain 404) and sends no rate-limit headers, and
enforces its TPM with 429s. An alias (``bill_as``) stands for a model the client's table cannot know.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import TEST_API_KEY
from tests.support.helpers import chat_requests, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.offline_teacher.process import running_teacher_server
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.ratelimit.calibration import CALIBRATION_SAMPLES

PROMPT = "Describe the defects."


def test_a_qwen_run_at_a_relay_passes_the_check_and_sends_what_qwen_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model route, no 404 refusal; every image sent at Qwen's own size and billed as estimated."""
    make_images(tmp_path / "images", 3, size=(1024, 768))
    make_images(tmp_path / "images", 2, prefix="big", size=(2000, 1500))
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    with running_teacher_server(api_key=TEST_API_KEY, mode="relay") as relay:
        params = params_for(tmp_path / "images", tmp_path / "out", relay.base_url, model="qwen-vl-max", max_tokens=200)
        run_generate_flow(params, show_progress=False)
        stats = relay.stats()
    photos = chat_requests(stats)
    assert len(photos) == 5 and {r["status"] for r in photos} == {200}
    assert stats["totals"]["other_paths"].get("/v1/models/{model}") == 1  # asked once, answered a plain 404
    sent = sorted(size for r in photos for size in r["image_sizes"])
    # 1024x768 -> 1036x756 (37 x 27 multiples of 28); 2000x1500 -> 1148x840 (within 1,280 tokens).
    assert sent == ["1036x756"] * 3 + ["1148x840"] * 2
    qwen = model_spec("qwen-vl-max")
    for record in photos:
        width, height = (int(side) for side in record["image_sizes"][0].split("x"))
        image_tokens = qwen.image_tokens(width, height)
        assert image_tokens in (37 * 27 + 2, 41 * 30 + 2)
        assert record["prompt_tokens"] - image_tokens < 20  # the rest is the prompt's few tokens


TPM = 120_000  # refills 2,000 tokens a second: ~108 of these requests a minute
CAP = 100
# Left of the relay's minute when the run starts: the gate's own burst (one second of the TPM) may go
# at once, so an endpoint that has had less than that since it was last emptied refuses the first one.
LEFT = 2 * TPM // 60
CALIBRATED = 40  # requests measured after calibration


def test_an_unknown_model_at_a_relay_reaches_the_throughput_its_true_usage_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's run, scaled: an alias no table knows, billed as Qwen, under the relay's TPM.

    Before, every request was estimated at gpt-4o-mini's 4 tiles (25,501 image tokens) for the whole
    run: 8 requests a minute where the tokens allowed ~190. Now the first answers give back what
    they over-booked, and after five of them the run adopts the tokens per pixel they measured.
    """
    total = CALIBRATION_SAMPLES + CALIBRATED
    make_images(tmp_path / "images", total, size=(1024, 768))
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    with running_teacher_server(api_key=TEST_API_KEY, mode="relay", tpm=TPM, bill_as={"my-teacher": "qwen-vl-max"}) as relay:
        with OpenAI(api_key=TEST_API_KEY, base_url=relay.base_url, max_retries=0) as client:
            client.chat.completions.create(  # spend the relay's minute but two seconds, as a long run finds it
                model="my-teacher", messages=[{"role": "user", "content": "hi"}], max_tokens=TPM - LEFT
            )
        params = params_for(
            tmp_path / "images", tmp_path / "out", relay.base_url,
            model="my-teacher", tpm=TPM, rpm=6000, max_tokens=CAP, concurrency=8,
        )  # fmt: skip
        run_generate_flow(params, show_progress=False)
        stats = relay.stats()
    photos = chat_requests(stats)
    answered = sorted((r for r in photos if r["status"] == 200), key=lambda r: r["t"])
    refused = [r for r in photos if r["status"] == 429]
    assert len(answered) == total
    assert len(refused) <= 0.01 * len(photos), refused
    after = answered[CALIBRATION_SAMPLES:]
    achieved_per_min = (len(after) - 1) / (after[-1]["t"] - after[0]["t"]) * 60
    ideal_per_min = TPM / statistics.mean(r["counted_tokens"] for r in after)
    ratio = achieved_per_min / ideal_per_min
    print(f"unknown model at a relay: {achieved_per_min:.1f} of {ideal_per_min:.1f} requests/min ({ratio:.2f}), "
          f"{len(refused)} 429s of {len(photos)}")  # fmt: skip
    assert ratio >= 0.9
