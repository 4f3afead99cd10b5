"""The sharded run's command-line options, parsed without running the CLI: they reach the params, the ledger URL's
password never does. Through the real CLI (bad options said once): tests/integration/test_team_cli_refusals.py."""

from __future__ import annotations

import argparse
import os

import pytest

from vqa_distill.cli import build_parser
from vqa_distill.cli.ledger_option import use_ledger_url
from vqa_distill.cli.teacher import add_generate_arguments, params_from_args
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV


def test_shard_flags_reach_the_params_and_the_ledger_url_never_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    args = build_parser().parse_args([
        "generate", "--images", "i", "--out", "o", "--prompt", "x", "--shards", "4", "--shard-attempts", "5",
        "--ledger-url", "postgresql+psycopg://u:secret-pw@db:5433/ledger",
    ])  # fmt: skip
    params = params_from_args(args)
    assert params.shards == 4 and params.shard_attempts == 5
    assert "secret-pw" not in params.model_dump_json()  # a flow parameter is stored and shown by Prefect
    use_ledger_url(args)
    assert os.environ[LEDGER_URL_ENV] == "postgresql+psycopg://u:secret-pw@db:5433/ledger"


@pytest.mark.parametrize(
    "argv",
    [["dataset", "--out", "runs/x"], ["batches", "--out", "runs/x"], ["collect", "--out", "runs/x"], ["failed", "latest"],
     ["retry-failed", "latest"]],
)
def test_every_command_that_reads_a_ledger_takes_the_ledger_url(argv: list[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``failed`` once told users to pass --ledger-url, which it did not accept."""
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    args = build_parser().parse_args([*argv, "--ledger-url", "postgresql+psycopg://u:pw@db/ledger"])
    use_ledger_url(args)
    assert os.environ[LEDGER_URL_ENV] == "postgresql+psycopg://u:pw@db/ledger"


def test_relative_folders_become_absolute_before_they_are_flow_parameters(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each worker would resolve ``data/runs/x`` in its own checkout: the parent and its shards would not
    share a run folder, nor (its schema named from the path) a shared ledger."""
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(["--images", "data/images", "--out", "data/runs/x", "--prompt", "x", "--shards", "3",
                              "--shard-deadline-h", "2"])  # fmt: skip
    params = params_from_args(args)
    assert params.images == str(tmp_path / "data" / "images") and params.out == str(tmp_path / "data" / "runs" / "x")
    assert params.shard_deadline_h == 2.0
    assert params.with_absolute_paths() is params  # already absolute: nothing to change
