"""The offline teacher's fault rules and command line, without starting a server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vqa_distill.offline_teacher import main as server_cli
from vqa_distill.offline_teacher.server.faults import FaultInjector, FaultRule, RequestView, load_fault_rules

MODEL = "gpt-4o-mini"


def test_fault_injector_without_a_network() -> None:
    view_a = RequestView(
        model=MODEL, user_text="a", system="", fingerprints=("f" * 64,), image_sizes=((10, 10),)
    )
    view_b = RequestView(
        model=MODEL, user_text="b", system="", fingerprints=("f" * 64,), image_sizes=((10, 10),)
    )
    injector = FaultInjector([FaultRule(kind="429", times=1), FaultRule(kind="500", times=1)])
    assert [getattr(injector.pick(view_a), "kind", None) for _ in range(3)] == ["429", "500", None]
    assert getattr(injector.pick(view_b), "kind", None) == "429"
    never = FaultInjector([FaultRule(kind="500", probability=0.0)])
    assert all(never.pick(view_a) is None for _ in range(20))
    half = FaultInjector([FaultRule(kind="500", probability=0.5)], seed=3)
    fired = sum(half.pick(view_a) is not None for _ in range(200))
    assert 60 < fired < 140


def test_fault_files_load_from_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(json.dumps([{"kind": "503", "times": 2, "retry_after": 1}]))
    (tmp_path / "f.yaml").write_text("faults:\n  - kind: bad_json\n    match_text: cat\n")
    assert load_fault_rules(tmp_path / "f.json")[0].retry_after == 1
    assert load_fault_rules(tmp_path / "f.yaml") == [FaultRule(kind="bad_json", match_text="cat")]


def test_cli_registers_teacher_server_with_its_flags() -> None:
    parser = argparse.ArgumentParser()
    from vqa_distill.cli import offline_teacher as command

    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["teacher-server", "--api-key-env", "MY_KEY", "--latency", "0.5", "--models", "a,b"]
    )
    assert (args.port, args.host, args.api_key_env, args.latency, args.models) == (
        8765,
        "127.0.0.1",
        "MY_KEY",
        0.5,
        "a,b",
    )
    assert args.func is server_cli.run and not args.access_log
    assert (args.rpm, args.tpm) == (None, None)  # unlimited unless asked
    limited = parser.parse_args(["teacher-server", "--rpm", "500", "--tpm", "200000"])
    assert (limited.rpm, limited.tpm) == (500, 200_000)


@pytest.mark.parametrize("value", ["0", "-5", "ten", "1.5"])
def test_cli_refuses_limits_below_one(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        server_cli.main(["--tpm", value])
    assert caught.value.code == 2 and "--tpm" in capsys.readouterr().err


def test_cli_refuses_an_unset_key_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    assert server_cli.main(["--api-key-env", "NO_SUCH_KEY_VARIABLE"]) == 3
    assert "NO_SUCH_KEY_VARIABLE" in capsys.readouterr().err
