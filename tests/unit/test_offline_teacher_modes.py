"""The offline teacher's modes without a server: settings, billing by alias, the self-hosted capacity, flags."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from pydantic import ValidationError

from vqa_distill.offline_teacher import main as server_cli
from vqa_distill.offline_teacher.rules.vendor_images import QWEN_DASHSCOPE, QWEN_SELF_HOSTED
from vqa_distill.offline_teacher.server import config as server_config
from vqa_distill.offline_teacher.server.capacity import Capacity, Overloaded
from vqa_distill.offline_teacher.server.config import (
    DEFAULT_MODELS,
    RELAY_MODELS,
    SELF_HOSTED_MODELS,
    ServerConfig,
)
from vqa_distill.offline_teacher.server.state import TeacherState


def test_each_mode_shows_what_its_real_servers_show() -> None:
    openai_mode = ServerConfig()
    assert openai_mode.served_models == list(DEFAULT_MODELS)
    assert openai_mode.serves_model_lookup and openai_mode.sends_ratelimit_headers
    assert not openai_mode.self_hosted
    relay = ServerConfig(mode="relay", rpm=60)
    assert relay.served_models == list(RELAY_MODELS)
    assert not relay.serves_model_lookup and not relay.sends_ratelimit_headers and relay.retry_after
    hosted = ServerConfig(mode="self-hosted")
    assert hosted.served_models == list(SELF_HOSTED_MODELS) and hosted.self_hosted
    assert not hosted.serves_model_lookup and not hosted.sends_ratelimit_headers
    assert (hosted.concurrency, hosted.queue_size) == (16, 64)
    knobs = ServerConfig(mode="relay", models=["x"], model_lookup=True, ratelimit_headers=True)
    assert knobs.served_models == ["x"] and knobs.serves_model_lookup and knobs.sends_ratelimit_headers
    aliased = ServerConfig(mode="relay", models=["x", "a"], bill_as={"a": "glm-4v", "b": "gemini-2.5-pro"})
    assert aliased.served_models == ["x", "a", "b"]  # an alias is served without being listed


def test_a_self_hosted_server_has_no_rate_limits() -> None:
    with pytest.raises(ValidationError, match="no rate limits"):
        ServerConfig(mode="self-hosted", tpm=100_000)
    with pytest.raises(ValidationError):
        ServerConfig(mode="self-hosted", concurrency=0)
    with pytest.raises(ValidationError):
        ServerConfig(mode="proxy")  # type: ignore[arg-type]


def test_the_state_bills_aliases_and_a_capped_qwen_budget() -> None:
    state = TeacherState.from_config(
        ServerConfig(mode="relay", bill_as={"my-teacher": "qwen-vl-max"}, qwen_max_pixels=1280 * 28 * 28)
    )
    assert state.image_rule("my-teacher") == QWEN_DASHSCOPE
    assert state.image_rule("Qwen/Qwen2.5-VL-72B-Instruct").max_pixels == 1_003_520  # type: ignore[union-attr]
    assert (
        TeacherState.from_config(ServerConfig()).image_rule("Qwen/Qwen2.5-VL-7B-Instruct") == QWEN_SELF_HOSTED
    )


def test_the_state_words_a_missing_model_as_its_mode_does() -> None:
    assert b"model_not_found" in bytes(TeacherState.from_config(ServerConfig()).model_missing("x").body)
    vllm = TeacherState.from_config(ServerConfig(mode="self-hosted")).model_missing("x")
    assert vllm.status_code == 404 and b'"code":404' in bytes(vllm.body)


def test_self_hosted_latency_grows_with_those_in_service() -> None:
    state = TeacherState.from_config(
        ServerConfig(mode="self-hosted", latency_s=1.0, latency_per_active_s=0.25)
    )
    assert [state.delay(n) for n in (0, 1, 2, 5)] == [1.0, 1.0, 1.25, 2.0]


async def test_capacity_serves_k_queues_q_and_refuses_the_rest() -> None:
    capacity = Capacity(concurrency=2, queue_size=2)
    tickets = [capacity.admit() for _ in range(4)]
    assert [t.done() for t in tickets] == [True, True, False, False]
    assert [tickets[0].result(), tickets[1].result()] == [1, 2]  # in service when each began
    with pytest.raises(Overloaded, match="2 requests in service and 2 waiting"):
        capacity.admit()
    capacity.release()  # the first in line gets the slot
    assert tickets[2].done() and not tickets[3].done() and tickets[2].result() == 2
    capacity.abandon(tickets[3])  # its client gave up while waiting
    assert capacity.queued == 0
    fifth = capacity.admit()
    assert not fifth.done()
    capacity.configure(concurrency=3, queue_size=2)  # one more slot: the waiting request gets it
    assert fifth.done() and fifth.result() == 3
    assert capacity.snapshot() == {
        "concurrency": 3,
        "queue_size": 2,
        "in_service": 3,
        "queued": 0,
        "peak_in_service": 3,
        "peak_queued": 2,
        "overloaded": 1,
    }


async def test_capacity_frees_a_slot_granted_to_a_client_already_gone() -> None:
    capacity = Capacity(concurrency=1, queue_size=None)
    first, second = capacity.admit(), capacity.admit()
    capacity.release()  # granted to the second...
    assert second.done() and capacity.in_service == 1
    capacity.abandon(second)  # ...whose client hung up meanwhile: the slot is free again
    assert capacity.in_service == 0 and first.done()
    many = [capacity.admit() for _ in range(50)]  # unbounded: nobody is refused
    assert capacity.queued == 49 and many[0].done()


async def test_capacity_hands_slots_in_arrival_order() -> None:
    capacity = Capacity(concurrency=1, queue_size=10)
    first = capacity.admit()
    waiting = [capacity.admit() for _ in range(3)]
    order: list[int] = []

    async def served(i: int) -> None:
        await waiting[i]
        order.append(i)
        capacity.release()

    tasks = [asyncio.create_task(served(i)) for i in (2, 0, 1)]
    assert first.done()
    capacity.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and capacity.in_service == 0


def test_cli_flags_of_the_modes() -> None:
    parser = argparse.ArgumentParser()
    server_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--mode", "self-hosted", "--concurrency", "2", "--queue-size", "unbounded",
            "--latency-per-active", "0.5", "--qwen-max-pixels", "1003520", "--no-model-lookup",
            "--bill-as", "my-teacher=qwen-vl-max", "--bill-as", "b=glm-4v", "--no-retry-after",
        ]
    )  # fmt: skip
    assert (args.mode, args.concurrency, args.queue_size, args.latency_per_active) == (
        "self-hosted",
        2,
        "unbounded",
        0.5,
    )
    assert (args.model_lookup, args.ratelimit_headers, args.retry_after) == (False, None, False)
    assert args.bill_as == [("my-teacher", "qwen-vl-max"), ("b", "glm-4v")]
    defaults = parser.parse_args([])
    assert (defaults.mode, defaults.queue_size, defaults.model_lookup, defaults.retry_after) == (
        "openai",
        None,
        None,
        True,
    )


@pytest.mark.parametrize("argv", [["--mode", "proxy"], ["--queue-size", "-1"], ["--bill-as", "nothing"]])
def test_cli_refuses_bad_mode_flags(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        server_cli.main(argv)
    assert caught.value.code == 2 and argv[0] in capsys.readouterr().err


def test_cli_refuses_rate_limits_on_a_self_hosted_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert server_cli.main(["--mode", "self-hosted", "--rpm", "60"]) == 3
    assert "no rate limits" in capsys.readouterr().err


def test_the_command_lines_constants_match_the_settings() -> None:
    # main.py keeps its own copies so that registering the command does not import pydantic.
    assert server_cli.MODES == server_config.MODES
    assert server_cli.SELF_HOSTED_CONCURRENCY == server_config.SELF_HOSTED_CONCURRENCY
    assert server_cli.SELF_HOSTED_QUEUE == server_config.SELF_HOSTED_QUEUE
