"""The Prefect server killed in the middle of ``vqa-distill generate``: every answer stays in the ledger and the
command ends within half a minute of the kill, saying in one line which server went away and what is saved;
a server gone before the run is one line too, never Prefect's traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import REPO_ROOT, TEST_API_KEY, chat_requests, make_images
from vqa_distill.errors import EXIT_FATAL
from vqa_distill.ops.prefect_server import free_port, start_server
from vqa_distill.supervisor import stop_process
from vqa_distill.teacher.ledger.records import Ledger

IMAGES = 40
KILL_AFTER = 10  # answers before the server is killed
END_WITHIN_S = 35.0  # the contract says ~30 s after the kill; a little room for a busy machine
GIVE_UP_S = 150.0  # before the fix the command took more than 10 minutes


def _client_env(api_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "OPENAI_API_KEY": TEST_API_KEY}


def _generate(images: Path, out: Path, base_url: str) -> list[str]:
    return [sys.executable, "-m", "vqa_distill.cli", "generate", "--images", str(images), "--out", str(out),
            "--base-url", base_url, "--prompt", "Describe it.", "--concurrency", "4", "--rpm", "100000",
            "--tpm", "50000000", "--retry-delay", "0.05", "--no-progress"]  # fmt: skip


def _answered(teacher: Any) -> int:
    return sum(1 for r in chat_requests(teacher.stats()) if r["status"] == 200)


@pytest.mark.timeout(600)
def test_killing_the_server_mid_run_keeps_every_answer_and_ends_in_one_line(teacher: Any, tmp_path: Path) -> None:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _client_env(api_url, tmp_path / "prefect-home")
    server = start_server(port, env, tmp_path / "logs")
    make_images(tmp_path / "images", IMAGES)
    teacher.set_latency(0.5)
    cli = subprocess.Popen(_generate(tmp_path / "images", tmp_path / "run", teacher.base_url), env=env, cwd=REPO_ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _answered(teacher) < KILL_AFTER:
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.1)
        os.kill(server.pid, signal.SIGKILL)  # a crash, not a shutdown
        killed = time.monotonic()
        out, err = cli.communicate(timeout=GIVE_UP_S)
        took = time.monotonic() - killed
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
        stop_process(server)
    assert took <= END_WITHIN_S, f"the command ended {took:.0f} s after the kill"
    assert cli.returncode == EXIT_FATAL, out + err
    assert "Traceback" not in out + err
    said = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and api_url in said[0] and f"{IMAGES} of {IMAGES} requests done" in said[0], err
    assert err.strip().splitlines()[-1] == said[0]  # the last word is that line
    assert "EventsWorker" not in err and "Finished in state" not in err  # Prefect's complaints stay off
    with Ledger(tmp_path / "run") as ledger:
        assert len(ledger.done_keys()) == IMAGES  # every answer paid for is kept
    assert _answered(teacher) == IMAGES


def test_a_server_gone_before_the_run_is_one_line_not_a_traceback(teacher: Any, tmp_path: Path) -> None:
    api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    make_images(tmp_path / "images", 2)
    done = subprocess.run(_generate(tmp_path / "images", tmp_path / "run", teacher.base_url), cwd=REPO_ROOT,
                          env=_client_env(api_url, tmp_path / "prefect-home"), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == EXIT_FATAL, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: the Prefect server at {api_url} does not answer (nothing was asked): start it, or point "
        "PREFECT_API_URL at a running one, and run the command again"
    ]
    assert chat_requests(teacher.stats()) == []
