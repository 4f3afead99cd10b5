"""Two workers, one limit: separate ``generate`` processes sharing Redis stay within the RPM at the endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO_ROOT, chat_requests, make_images, run_cli
from tests.support.redis import (
    admitted_between,
    conformance_excess,
)
from vqa_distill.errors import EXIT_FATAL
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.redis_server import redis_url as make_url
from vqa_distill.teacher.ratelimit.buckets import BucketShape
from vqa_distill.teacher.ratelimit.global_gate import REDIS_URL_ENV

WORKER_SIZES = {"a": (64, 48), "b": (48, 64)}  # each worker's requests are told apart by their image size


def worker_args(folder: Path, base_url: str, rpm: int) -> list[str]:
    """A generate command of one worker: its own images and run folder, the shared endpoint and limits."""
    return [
        "generate", "--images", str(folder / "images"), "--out", str(folder / "out"), "--base-url", base_url,
        "--prompt", "Describe the defects.", "--retry-delay", "0.05", "--no-progress",
        "--rpm", str(rpm), "--tpm", "10000000", "--concurrency", "8",
    ]  # fmt: skip


def test_two_generate_processes_share_one_request_limit(
    tmp_path: Path, teacher: Any, api_key_env: str, redis_url: str,
) -> None:  # fmt: skip
    rpm, per_worker = 120, 14
    for name, size in WORKER_SIZES.items():
        make_images(tmp_path / name / "images", per_worker, prefix=name, size=size)
    env = {**os.environ, REDIS_URL_ENV: redis_url}
    argvs = [[sys.executable, "-m", "vqa_distill.cli", *worker_args(tmp_path / name, teacher.base_url, rpm)]
             for name in WORKER_SIZES]  # fmt: skip
    workers = [
        subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for argv in argvs
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output[-3000:]
        assert redis_url not in output
    requests = chat_requests(teacher.stats())
    assert len(requests) == 2 * per_worker
    times = [r["t"] for r in requests]
    shape = BucketShape.for_limit(rpm)
    assert conformance_excess(times, [1.0] * len(times), shape) <= 0.5  # timing noise, never a whole request
    by_worker = {
        name: sorted(r["t"] for r in requests if r["image_sizes"][0] == f"{w}x{h}")
        for name, (w, h) in WORKER_SIZES.items()
    }
    assert all(len(ts) == per_worker for ts in by_worker.values()), {k: len(v) for k, v in by_worker.items()}
    overlap_from = max(ts[0] for ts in by_worker.values()) + 1.0
    overlap_to = min(ts[-1] for ts in by_worker.values())
    assert overlap_to - overlap_from >= 2.0, "the two workers barely overlapped: nothing shared to measure"
    together = admitted_between(times, overlap_from, overlap_to) / (overlap_to - overlap_from)
    assert together >= 0.85 * rpm / 60  # the limit is used together, not halved per worker


def test_an_unreachable_redis_stops_the_run_at_once_naming_host_and_port(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    password = "not-for-logs-" + "z" * 16
    port = free_port()
    make_images(tmp_path / "w" / "images", 2)
    result = run_cli(*worker_args(tmp_path / "w", teacher.base_url, 60),
                     env={REDIS_URL_ENV: make_url(password, "127.0.0.1", port)})  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_FATAL, output[-3000:]
    assert f"127.0.0.1:{port}" in output and password not in output
    assert chat_requests(teacher.stats()) == []
