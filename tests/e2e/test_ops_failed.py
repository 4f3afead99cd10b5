"""Failed images, found and retried on the local stack: ``failed``, the UI's Retry, ``retry-failed``.

Two of five pictures are refused by the offline teacher (an HTTP 400 for their 40x40 size) and a
truncated JPEG cannot be decoded, in a run of the ``generate`` deployment. The requests the teacher server counts prove that each way of
retrying asks for those two and nothing else: the UI's Retry button (done through the API exactly
as the UI does it, with a worker picking the run up again), the ``retry-failed`` deployment, and
the ``vqa-distill retry-failed`` command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, make_image, make_images, teacher_params
from tests.support.ops_fixtures import OpsStack, wait_for
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.errors import EXIT_OK, EXIT_SOME_FAILED

REFUSE_ODD_SIZE = [{"kind": "400", "match_image_size": "40x40"}]
ONLY_THE_ODD_TWO = ["40x40", "40x40"]
# What the UI posts when Retry is pressed on a failed flow run (prefect-ui-library, flowRuns.retryFlowRun).
UI_RETRY = {"state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"}, "force": True}


def asked_sizes(teacher: Any) -> list[str]:
    """The image sizes the teacher server was asked about since its last reset; each picture once."""
    requests = chat_requests(teacher.stats())
    assert len({r["fingerprints"][0] for r in requests}) == len(requests), "a picture was asked twice"
    return sorted(r["image_sizes"][0] for r in requests)


def failed_listing(stack: OpsStack, run: str) -> dict[str, Any]:
    """``vqa-distill failed RUN --json``, once the API has recorded the run's task runs."""

    def listing() -> dict[str, Any] | None:
        done = stack.cli("failed", run, "--json")
        assert done.returncode in (EXIT_OK, EXIT_SOME_FAILED), done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data if len(data["images"]) == 3 else None

    result: dict[str, Any] = wait_for(listing, what="three failed images listed")
    return result


def test_failed_images_are_listed_and_only_they_are_retried(ops_stack: OpsStack, teacher: Any, tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 3)
    make_images(images, 2, prefix="odd", size=(40, 40))
    truncated = images / "truncated.jpg"
    make_image(truncated, (90, 90, 90), size=(300, 300), fmt="JPEG")
    truncated.write_bytes(truncated.read_bytes()[:400])
    teacher.set_faults(REFUSE_ODD_SIZE)
    params = teacher_params(images, tmp_path / "run", teacher.base_url)
    run_id = ops_stack.run_deployment("generate/generate", {"params": params})
    run = ops_stack.wait_final(run_id)
    assert run["state_type"] == "FAILED" and "3 of 6 requests failed" in run["state"]["message"]
    assert asked_sizes(teacher) == ["40x40", "40x40", "64x48", "64x48", "64x48"]

    # `failed` lists them from the Prefect API: file, reason (HTTP status and the API's message, or the
    # decode error), attempts.
    listing = failed_listing(ops_stack, run_id)
    assert listing["flow_run_id"] == run_id and listing["out"] == str(tmp_path / "run")
    reasons = {i["file"]: i["reason"] for i in listing["images"]}
    assert [(i["file"], i["attempts"]) for i in listing["images"]] == [
        ("odd_000.png", 1), ("odd_001.png", 1), ("truncated.jpg", 1)
    ]  # fmt: skip
    assert all("HTTP 400" in reasons[f] and "refused" in reasons[f] for f in ("odd_000.png", "odd_001.png"))
    assert reasons["truncated.jpg"].startswith("ImageError:") and "truncated" in reasons["truncated.jpg"].lower()
    assert failed_listing(ops_stack, "latest")["flow_run_id"] == run_id
    table = ops_stack.cli("failed", run_id)
    assert table.returncode == EXIT_SOME_FAILED and "odd_000.png" in table.stdout and "HTTP 400" in table.stdout

    # The UI's Retry: the same flow run goes back to the worker; answered images come from the ledger/cache.
    teacher.reset()
    ops_stack.api("POST", f"/flow_runs/{run_id}/set_state", UI_RETRY)
    retried = ops_stack.wait_final(run_id, run_count=2)
    assert retried["state_type"] == "FAILED" and "3 of 3 requests failed" in retried["state"]["message"]
    assert asked_sizes(teacher) == ONLY_THE_ODD_TWO

    # The retry-failed deployment re-asks the same two (the fault is still on, so they fail again).
    teacher.reset()
    retry_id = ops_stack.run_deployment("retry-failed/retry-failed", {"flow_run_id": run_id})
    retry_run = ops_stack.wait_final(retry_id)
    assert retry_run["state_type"] == "FAILED", retry_run["state"]
    assert asked_sizes(teacher) == ONLY_THE_ODD_TWO

    # `vqa-distill retry-failed latest` (the retry's own teacher run): the fault is gone and the broken file
    # removed, so both pictures are answered and the run succeeds.
    teacher.reset()
    teacher.set_faults([])
    truncated.unlink()
    cli = ops_stack.cli("retry-failed", "latest")
    assert cli.returncode == EXIT_OK, cli.stdout + cli.stderr
    assert asked_sizes(teacher) == ONLY_THE_ODD_TWO
    assert len(read_jsonl(tmp_path / "run" / "train.jsonl")) == 5  # the dataset was rebuilt with them
