"""A new user's first commands: a fresh home, no Prefect server anywhere, both cores busy.

The first ``generate`` starts a local Prefect server in the background (Prefect's temporary server
would time out here) and completes; the second, over the same answered images, returns within
seconds because the server is already up and nothing is asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO_ROOT, TEST_API_KEY, chat_requests, generate_args, make_images
from vqa_distill.errors import EXIT_OK
from vqa_distill.ops.prefect_server import free_port

SECOND_RUN_WALL_S = 5.0
BUSY_LOOP = "while True: pass"


def vqa_distill(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vqa_distill.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_first_run_on_a_fresh_home_then_a_second_in_seconds(teacher: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # no server, no settings
    env.update(HOME=str(home), OPENAI_API_KEY=TEST_API_KEY, VQA_DISTILL_PREFECT_PORT=str(free_port()))
    make_images(tmp_path / "images", 2)
    args = generate_args(tmp_path / "images", tmp_path / "run", teacher.base_url)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(os.cpu_count() or 2)]
    try:
        try:
            first = vqa_distill(args, env, timeout=600)
        finally:
            for process in busy:
                process.kill()
                process.wait()
        assert first.returncode == EXIT_OK, first.stdout + first.stderr
        assert "Traceback" not in first.stderr
        assert f"Prefect UI: http://127.0.0.1:{env['VQA_DISTILL_PREFECT_PORT']}" in first.stderr
        assert (home / ".prefect" / "server.pid").is_file()
        assert len(chat_requests(teacher.stats())) == 2

        started = time.monotonic()
        second = vqa_distill(args, env, timeout=120)
        wall = time.monotonic() - started
        assert second.returncode == EXIT_OK, second.stdout + second.stderr
        assert wall <= SECOND_RUN_WALL_S, f"second run took {wall:.1f} s"
        assert "starting a local Prefect server" not in second.stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["already_answered"] == 2 and summary["answered_now"] == 0
        assert len(chat_requests(teacher.stats())) == 2
    finally:
        subprocess.run([sys.executable, "-m", "prefect", "server", "stop"], env=env, capture_output=True, timeout=60)
