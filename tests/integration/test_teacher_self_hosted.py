"""``--concurrency auto`` against a self-hosted server at capacity, through the real client and generate flow.

The offline teacher in self-hosted mode has K slots and Q places in line, answers 503 beyond them, and
sends no rate-limit headers. The run starts below K, so it must find the knee itself: the server is
kept busy (busy slot-seconds over K x the run's wall time) with few overload answers and no image failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_API_KEY
from tests.support.helpers import chat_requests, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server
from vqa_distill.offline_teacher.server.config import SELF_HOSTED_MODELS

K, Q = 4, 4  # the server's slots and line
SERVICE_S = 0.4  # one request's service time alone
PER_ACTIVE_S = 0.02  # and its slowdown per request in service beside it (batching)
IMAGES = 100
MIN_UTILISATION = 0.8
MAX_OVERLOAD_SHARE = 0.05


@pytest.fixture
def server() -> Iterator[TeacherServerHandle]:
    with running_teacher_server(
        mode="self-hosted", api_key=TEST_API_KEY, concurrency=K, queue_size=Q,
        latency_s=SERVICE_S, latency_per_active_s=PER_ACTIVE_S,
    ) as handle:  # fmt: skip
        yield handle


def utilisation(records: list[dict[str, Any]]) -> float:
    """Busy slot-seconds over K x the wall time from the first arrival to the last answer."""
    served = [r for r in records if r.get("service_started") is not None]
    start = min(r["t"] for r in records)
    end = max(r["service_started"] + r["service_s"] for r in served)
    return sum(r["service_s"] for r in served) / (K * (end - start))


def test_auto_concurrency_keeps_a_self_hosted_server_busy_without_overloading_it(
    tmp_path: Path, server: TeacherServerHandle, api_key_env: str
) -> None:
    make_images(tmp_path / "images", IMAGES)
    params = params_for(
        tmp_path / "images", tmp_path / "out", server.base_url, model=SELF_HOSTED_MODELS[0],
        rate_limits=False, concurrency="auto",
    )  # fmt: skip
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None, outcome.fatal
    records = chat_requests(server.stats())
    overloads = sum(1 for r in records if r["overloaded"])
    used = utilisation(records)
    print(f"utilisation {used:.2f}, overload answers {overloads}/{len(records)}, {outcome.summary.concurrency}")
    assert outcome.summary.failed == 0 and outcome.summary.answered_now == IMAGES
    assert used >= MIN_UTILISATION
    assert overloads <= MAX_OVERLOAD_SHARE * len(records)
    assert outcome.summary.concurrency is not None and outcome.summary.concurrency.startswith("auto")
