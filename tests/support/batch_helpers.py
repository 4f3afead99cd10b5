"""Helpers of the Batch API tests: steer the offline teacher's batch clock, wait for batches, count their lines."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

FINAL = {"completed", "failed", "expired", "cancelled"}
FAST_STAGE_S = 0.05  # seconds per batch stage in tests: a batch completes in well under a second


def batch_admin(teacher: Any, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read (or, with ``settings``, replace) the server's batch settings; returns settings and batches."""
    headers = {"authorization": f"Bearer {teacher.api_key}"}
    url = f"{teacher.root_url}/_admin/batches"
    response = (
        httpx.put(url, json=settings, headers=headers)
        if settings is not None
        else httpx.get(url, headers=headers)
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def fast_batches(teacher: Any, **settings: Any) -> None:
    """Make the server's batches run through their stages quickly, with ``settings`` (max_lines, window_s...)."""
    batch_admin(teacher, {"stage_s": FAST_STAGE_S, **settings})


def sync_client(teacher: Any) -> openai.OpenAI:
    """The real client, on the teacher server."""
    return openai.OpenAI(base_url=teacher.base_url, api_key=teacher.api_key, max_retries=0, timeout=20)


def server_batches(teacher: Any) -> list[dict[str, Any]]:
    """Every batch at the server, oldest first: id, status, total lines, custom_ids answered."""
    batches: list[dict[str, Any]] = batch_admin(teacher)["batches"]
    return batches


def wait_batches_final(teacher: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Wait until every batch at the server is completed, failed, expired or cancelled; return them."""
    deadline = time.monotonic() + timeout
    while True:
        batches = server_batches(teacher)
        if all(b["status"] in FINAL for b in batches):
            return batches
        if time.monotonic() > deadline:
            raise AssertionError(f"batches not final after {timeout:.0f} s: {batches}")
        time.sleep(0.1)


def wait_status(client: openai.OpenAI, batch_id: str, wanted: set[str], timeout: float = 30.0) -> Any:
    """Poll a batch through the client until its status is one of ``wanted``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in wanted:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout:.0f} s")
        time.sleep(0.05)
