"""The team stack's and the sharded run's command-line options through the real CLI (``vqa-distill`` in a
subprocess): the ledger URL flag opens that ledger and never shows its password, and bad options are one
plain line. Parsing them alone: tests/unit/test_team_cli_options.py."""

from __future__ import annotations

from pathlib import Path

from tests.support.helpers import make_images, run_cli
from vqa_distill.errors import EXIT_FATAL


def test_the_ledger_url_flag_is_the_ledger_the_run_opens_and_its_password_is_never_shown(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 1)
    done = run_cli(
        "generate", "--images", str(images), "--out", str(tmp_path / "run"), "--prompt", "x", "--no-progress",
        "--base-url", "http://127.0.0.1:1/v1", "--ledger-url", "postgresql+psycopg://u:secret-pw@127.0.0.1:1/ledger",
        env={"OPENAI_API_KEY": "sk-test"}, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_FATAL, output
    assert "cannot open the ledger at" in output and "127.0.0.1:1/ledger" in output  # not the folder's SQLite file
    assert "secret-pw" not in output and "Traceback" not in output  # a user error: one line, not a bug report
    assert not (tmp_path / "run" / "ledger.sqlite").exists()


def test_bad_stack_options_are_one_plain_line(tmp_path: Path) -> None:
    workers = run_cli("stack", "up", "--home", str(tmp_path / "stack"), "--cpu-workers", "0", timeout=120)
    assert workers.returncode == EXIT_FATAL
    assert workers.stderr.strip() == "error: --cpu-workers must be at least 1, not 0"
    assert not (tmp_path / "stack" / "state.json").exists()
    restart = run_cli("stack", "restart", "prefect-server", "--home", str(tmp_path / "none"), timeout=120)
    assert restart.returncode == EXIT_FATAL and restart.stderr.strip() == f"error: no stack under {tmp_path / 'none'}"
