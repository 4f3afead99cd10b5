"""The API key from a Prefect Secret block, in a deployment run on a worker whose own key is wrong.

The stack's workers carry the session's test key in ``OPENAI_API_KEY``; this offline teacher accepts
only another key, kept in a Secret block. A run that completes proves the key came from the block
(read in an async flow, where ``Secret.load`` would hand back a coroutine); a missing block is one
plain line that names it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO_ROOT, chat_requests, generate_args, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack
from vqa_distill.errors import EXIT_FATAL
from vqa_distill.offline_teacher.process import running_teacher_server

BLOCK_KEY = "sk-block-only-7a1c9e3b5d"  # a fake key only the Secret block holds
BLOCK_NAME = "teacher-key-e2e"
SAVE_BLOCK = "import os; from prefect.blocks.system import Secret; Secret(value=os.environ['KEY']).save(os.environ['NAME'], overwrite=True)"


def save_secret_block(stack: OpsStack, name: str, value: str) -> None:
    env = {**os.environ, **stack.env, "KEY": value, "NAME": name}
    done = subprocess.run([sys.executable, "-c", SAVE_BLOCK], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_deployment_run_takes_its_key_from_a_secret_block(ops_stack: OpsStack, tmp_path: Path) -> None:
    save_secret_block(ops_stack, BLOCK_NAME, BLOCK_KEY)
    make_images(tmp_path / "images", 2)
    with running_teacher_server(api_key=BLOCK_KEY) as server:
        params: dict[str, Any] = {**teacher_params(tmp_path / "images", tmp_path / "run", server.base_url), "api_key_block": BLOCK_NAME}
        run = ops_stack.wait_final(ops_stack.run_deployment("generate/generate", {"params": params}))
        assert run["state_type"] == "COMPLETED", run["state"]
        assert len(chat_requests(server.stats())) == 2
    assert (tmp_path / "run" / "train.jsonl").read_text().count("\n") == 2


def test_a_missing_block_is_one_plain_line_naming_it(ops_stack: OpsStack, teacher: Any, tmp_path: Path) -> None:
    make_images(tmp_path / "images", 1)
    params = {**teacher_params(tmp_path / "images", tmp_path / "run", teacher.base_url), "api_key_block": "no-such-block"}
    run = ops_stack.wait_final(ops_stack.run_deployment("generate/generate", {"params": params}))
    assert run["state_type"] == "FAILED" and "'no-such-block' not found" in run["state"]["message"]
    done = ops_stack.cli(*generate_args(tmp_path / "images", tmp_path / "cli-run", teacher.base_url,
                                        "--api-key-block", "no-such-block"))  # fmt: skip
    assert done.returncode == EXIT_FATAL
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: Prefect Secret block 'no-such-block' not found")
    assert "Traceback" not in done.stderr
    assert chat_requests(teacher.stats()) == []
