"""Batch input files: each line carries the online request's body, and files split within their limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import make_image
from vqa_distill.errors import ConfigError
from vqa_distill.teacher.batch.files import (
    BATCH_ENDPOINT,
    MAX_BYTES_ENV,
    MAX_REQUESTS_ENV,
    BatchLimits,
    BuiltParts,
    PartWriter,
    batch_line,
)
from vqa_distill.teacher.endpoint.client import build_messages
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.prepare import prepare_image
from vqa_distill.teacher.run.batch_summary import batch_costs, mean_kib


def _request(image: Path, model: str, **params: object) -> TeacherRequest:
    return TeacherRequest(image_path=str(image), rel_path=image.name, sha256="ab" * 32, prompt="Describe it.",
                          system="Be brief.", model=model, params={"detail": "auto", "max_pixels": 4096, **params})  # fmt: skip


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", {"max_tokens": 100, "temperature": 0.2}),
        # A reasoning model: the cap under its own name, no temperature, its effort.
        ("gpt-5-mini", {"max_completion_tokens": 100, "reasoning_effort": "low"}),
    ],
)
def test_a_line_carries_the_online_body_with_the_models_rules(
    tmp_path: Path, model: str, expected: dict[str, object]
) -> None:
    image = make_image(tmp_path / "a.png", (10, 200, 30), size=(120, 90))
    request = _request(image, model, max_tokens=100, temperature=0.2, reasoning_effort="low")
    prepared = prepare_image(image, 4096)
    line = batch_line(request, prepared)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = json.loads(line)
    assert data["custom_id"] == request.key and data["method"] == "POST" and data["url"] == BATCH_ENDPOINT
    body = data["body"]
    assert body.pop("model") == model and body.pop("messages") == build_messages(request, prepared)
    assert body == expected  # a chat model gets no reasoning_effort


def test_files_split_by_count_and_by_bytes(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, BatchLimits(max_requests=3, max_bytes=100))
    requests = [_request(tmp_path / f"{i}.png", "gpt-4o-mini") for i in range(7)]
    for request in requests[:4]:  # 4 x 20 bytes: the count closes the first file after 3
        writer.add(request, b"x" * 19 + b"\n")
    for request in requests[4:]:  # 3 x 45 bytes: 20 + 45 + 45 would pass 100 bytes
        writer.add(request, b"y" * 44 + b"\n")
    parts = writer.close()
    assert [len(p.requests) for p in parts] == [3, 2, 2]
    assert [p.bytes for p in parts] == [60, 65, 90]
    assert all(p.bytes <= 100 and p.path.stat().st_size == p.bytes for p in parts)
    assert [r.key for p in parts for r in p.requests] == [r.key for r in requests]


def test_lines_per_file_follows_the_average_line() -> None:
    built = BuiltParts(parts=[], failures=[], lines=4, line_bytes=4 * 1000)
    assert built.lines_per_file(BatchLimits(max_requests=50_000, max_bytes=10_000)) == 10
    assert built.lines_per_file(BatchLimits(max_requests=5, max_bytes=10_000_000)) == 5
    assert BuiltParts(parts=[], failures=[], lines=0, line_bytes=0).lines_per_file(BatchLimits()) is None
    assert mean_kib(4096, 2) == 2.0 and mean_kib(0, 0) is None


def test_limits_come_from_the_environment() -> None:
    assert BatchLimits.from_env({}) == BatchLimits(50_000, 200 * 1024 * 1024)
    assert BatchLimits.from_env({MAX_REQUESTS_ENV: "10", MAX_BYTES_ENV: "2048"}) == BatchLimits(10, 2048)
    with pytest.raises(ConfigError, match=MAX_BYTES_ENV):
        BatchLimits.from_env({MAX_BYTES_ENV: "lots"})
    with pytest.raises(ConfigError, match="at least 1"):
        BatchLimits.from_env({MAX_REQUESTS_ENV: "0"})


def test_the_batch_price_is_half_the_online_one() -> None:
    batch, online, saving = batch_costs("gpt-4o-mini", 1_000_000, 1_000_000)
    assert (online, batch, saving) == (0.75, 0.375, 0.375)
    assert batch_costs("some-unknown-model", 10, 10) == (None, None, None)
