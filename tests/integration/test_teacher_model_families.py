"""Model families end to end: the real CLI, the real client, an offline teacher enforcing each model's rules.

The offline teacher refuses what OpenAI refuses (``max_tokens`` or a temperature on a reasoning model,
``reasoning_effort`` on a chat model) with a 400, bills images with each family's own rule, and can
enforce a tokens-per-minute limit with 429s, so a wrong parameter or a wrong estimate shows here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.conftest import TEST_API_KEY
from tests.support.helpers import chat_requests, generate_args, make_images, run_cli
from vqa_distill.offline_teacher.process import running_teacher_server

CLI_TIMEOUT_S = 120


def train_rows(out: Path) -> list[dict[str, Any]]:
    """Return the rows of the run's train.jsonl."""
    return [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize(
    ("model", "effort"),
    [("gpt-5-mini", "minimal"), ("o4-mini", "minimal")],  # o4-mini takes no "minimal": the client sends "low"
)
def test_a_reasoning_model_run_sends_only_what_the_model_accepts(
    tmp_path: Path, teacher: Any, api_key_env: str, model: str, effort: str
) -> None:
    images = make_images(tmp_path / "images", 4)
    out = tmp_path / "out"
    args = generate_args(
        tmp_path / "images", out, teacher.base_url,
        "--model", model, "--temperature", "0.2", "--reasoning-effort", effort, "--max-tokens", "200",
    )  # fmt: skip
    result = run_cli(*args, timeout=CLI_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = [r["status"] for r in teacher.stats()["requests"]]
    assert statuses and set(statuses) == {200}  # no 400 for max_tokens, temperature or reasoning_effort
    assert len(chat_requests(teacher.stats())) == len(images)
    rows = train_rows(out)
    assert len(rows) == len(images) and all(row["messages"][-1]["content"] for row in rows)
    said = result.stdout + result.stderr
    assert said.count(f"{model} does not accept temperature") == 1  # warned once, not once per image


def test_a_chat_model_run_drops_reasoning_effort(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    images = make_images(tmp_path / "images", 2)
    out = tmp_path / "out"
    args = generate_args(
        tmp_path / "images", out, teacher.base_url, "--model", "gpt-4.1-mini", "--reasoning-effort", "high"
    )
    result = run_cli(*args, timeout=CLI_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["status"] for r in teacher.stats()["requests"]} == {200}
    assert len(train_rows(out)) == len(images)


TPM = 120_000  # refills 2,000 tokens a second: one small gpt-4o-mini image (8,500 tokens) every ~4 s
MAX_TOKENS = 200  # room for the whole answer: a cut-off one is not a dataset row
IMAGES = 5


def test_a_gpt_4o_mini_run_keeps_under_the_endpoints_tpm_with_true_image_tokens(tmp_path: Path) -> None:
    """A small image costs gpt-4o-mini 2,833 + 5,667 tokens, not gpt-4o's 255: at this TPM the run must wait.

    The endpoint's minute of allowance is spent first, as a long run finds it: the client then has
    only the refill, and sending by gpt-4o's figures would be refused for most images.
    """
    images = make_images(tmp_path / "images", IMAGES)
    out = tmp_path / "out"
    with running_teacher_server(api_key=TEST_API_KEY, tpm=TPM) as server:
        with OpenAI(api_key=TEST_API_KEY, base_url=server.base_url, max_retries=0) as client:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=TPM - 10
            )
        args = generate_args(
            tmp_path / "images", out, server.base_url,
            "--model", "gpt-4o-mini", "--tpm", str(TPM), "--max-tokens", str(MAX_TOKENS),
        )  # fmt: skip
        result = run_cli(*args, env={"OPENAI_API_KEY": TEST_API_KEY}, timeout=CLI_TIMEOUT_S)
        stats = server.stats()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(train_rows(out)) == len(images)
    photos = chat_requests(stats)
    refused = [r for r in photos if r["status"] == 429]
    assert len(refused) <= 1, refused  # the first request may meet an endpoint that has not refilled yet
    answered = sorted((r for r in photos if r["status"] == 200), key=lambda r: r["t"])
    assert len(answered) == IMAGES
    per_image = answered[0]["counted_tokens"]
    assert per_image == 2833 + 5667 + 6 + MAX_TOKENS  # one tile at gpt-4o-mini's rates, the prompt, the cap
    # The client spaced the images by their true cost: at most the refill rate, never a burst.
    span = answered[-1]["t"] - answered[0]["t"]
    assert span >= 0.9 * (IMAGES - 1) * per_image / (TPM / 60)
