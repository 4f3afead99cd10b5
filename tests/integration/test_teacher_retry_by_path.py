"""Two pictures named ``x.jpg`` in two folders, one refused: only that one is listed and re-asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, generate_args, make_image, run_cli
from tests.support.row_pictures import original_of
from vqa_distill.errors import EXIT_OK, EXIT_SOME_FAILED

RECORDED_WITHIN_S = 30.0  # task runs reach the API a moment after the flow run ends


def failed_listing(run_id: str) -> dict[str, Any]:
    """``vqa-distill failed RUN --json`` once the API lists the run's failed task run."""
    deadline = time.monotonic() + RECORDED_WITHIN_S
    while True:
        done = run_cli("failed", run_id, "--json")
        assert done.returncode in (EXIT_OK, EXIT_SOME_FAILED), done.stderr
        listing: dict[str, Any] = json.loads(done.stdout)
        if listing["images"] or time.monotonic() > deadline:
            return listing
        time.sleep(0.5)


def test_retry_failed_tells_two_files_of_one_name_apart(teacher: Any, tmp_path: Path, api_key_env: str) -> None:
    images = tmp_path / "images"
    make_image(images / "a" / "x.jpg", (200, 40, 40), size=(40, 40), fmt="JPEG")  # refused below
    make_image(images / "b" / "x.jpg", (40, 200, 40), size=(64, 48), fmt="JPEG")
    teacher.set_faults([{"kind": "400", "match_image_size": "40x40"}])
    first = run_cli(*generate_args(images, tmp_path / "run", teacher.base_url))
    assert first.returncode == EXIT_SOME_FAILED, first.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    listing = failed_listing(summary["flow_run_id"])
    assert [image["file"] for image in listing["images"]] == ["a/x.jpg"]

    teacher.set_faults([])
    teacher.reset()
    retried = run_cli("retry-failed", summary["flow_run_id"])
    assert retried.returncode == EXIT_OK, retried.stdout + retried.stderr
    asked = chat_requests(teacher.stats())
    assert [r["image_sizes"][0] for r in asked] == ["40x40"]  # a/x.jpg only; b/x.jpg stays answered
    rows = (tmp_path / "run" / "train.jsonl").read_text().splitlines()
    originals = list(images.rglob("x.jpg"))
    assert sorted(original_of(json.loads(row)["images"][0], originals).parent.name for row in rows) == ["a", "b"]
