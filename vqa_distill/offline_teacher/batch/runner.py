"""The life of one offline batch, as a task on the server's event loop, stage by stage on its clock.

validating (``stage_s``; the file is read and checked) -> in_progress (lines answered one by one, at
least ``stage_s``) -> finalizing (``stage_s``) -> completed, with the output and error files in the
API's line format. A cancel request ends it ``cancelled``, a completion window that runs out ends it
``expired``: the lines answered so far are kept, the rest are written to the error file with
``batch_cancelled`` / ``batch_expired``, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from vqa_distill.offline_teacher.batch.lines import InputLine, answer_line, read_input
from vqa_distill.offline_teacher.batch.store import BatchStore, StoredBatch
from vqa_distill.offline_teacher.server.state import TeacherState

HOLD_POLL_S = 0.05  # how often a held batch looks whether it may go on
UNFINISHED = {  # status -> (error code, message) written for the lines never answered
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was cancelled before it could be executed."),
}


def _result_line(custom_id: str, status: int, body: dict[str, Any]) -> bytes:
    line = {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": body},
        "error": None,
    }
    return json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"


def _unfinished_line(custom_id: str, status: str) -> bytes:
    code, message = UNFINISHED[status]
    line = {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
    return json.dumps(line).encode("utf-8") + b"\n"


async def _pause(batch: StoredBatch, seconds: float) -> bool:
    """Wait ``seconds``; return True early when the batch is cancelled meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(batch.cancel.wait(), timeout=seconds)
    return batch.cancel.is_set()


def _deadline(batch: StoredBatch) -> float:
    """Return the wall-clock second at which the batch's completion window ends."""
    return batch.created_t + batch.settings.window_s


async def run_batch(batch: StoredBatch, store: BatchStore, state: TeacherState) -> None:
    """Drive ``batch`` from validating to a final status."""
    stage_s = batch.settings.stage_s
    input_file = store.files.get(batch.input_file_id)
    if await _pause(batch, stage_s):
        return await _finish(batch, store, [], [], "cancelled")
    lines, problems = read_input(input_file.data if input_file else b"", batch.endpoint, batch.settings)
    if problems:
        batch.errors = problems
        batch.move("failed")
        return None
    batch.total = len(lines)
    batch.model = str(lines[0].body.get("model"))
    batch.move("in_progress")
    started = time.monotonic()
    outputs: list[bytes] = []
    errors: list[bytes] = []
    final = await _answer_lines(batch, store, state, lines, outputs, errors)
    if final == "completed":
        left = stage_s - (time.monotonic() - started)
        if left > 0 and await _pause(batch, left):
            final = "cancelled"
    await _finish(batch, store, outputs, errors, final, lines)
    return None


async def _answer_lines(
    batch: StoredBatch,
    store: BatchStore,
    state: TeacherState,
    lines: list[InputLine],
    outputs: list[bytes],
    errors: list[bytes],
) -> str:
    """Answer lines until done, cancelled or expired; return the final status.

    ``max_lines`` is read from the store's current settings, so a test can hold running batches
    (``max_lines: 0``) and let them go on later (``max_lines: null``).
    """
    for line in lines:
        while True:
            if batch.cancel.is_set():
                return "cancelled"
            if time.time() >= _deadline(batch):
                return "expired"
            limit = store.settings.max_lines
            if limit is None or batch.completed + batch.failed < limit:
                break
            await _pause(batch, min(HOLD_POLL_S, max(0.0, _deadline(batch) - time.time())))
        status, body = await answer_line(state, line.body)
        (outputs if status == 200 else errors).append(_result_line(line.custom_id, status, body))
        if status == 200:
            batch.completed += 1
        else:
            batch.failed += 1
        batch.answered_ids.append(line.custom_id)
    return "completed"


async def _finish(
    batch: StoredBatch,
    store: BatchStore,
    outputs: list[bytes],
    errors: list[bytes],
    final: str,
    lines: list[InputLine] | None = None,
) -> None:
    """Write the output and error files and enter the final status (after finalizing/cancelling)."""
    stage_s = batch.settings.stage_s
    if final == "completed":
        batch.move("finalizing")
        if await _pause(batch, stage_s):
            final = "cancelled"
    if final == "cancelled":
        if batch.status != "cancelling":
            batch.move("cancelling")
        await asyncio.sleep(stage_s)
    done = set(batch.answered_ids)
    if final in UNFINISHED:
        errors += [
            _unfinished_line(line.custom_id, final) for line in lines or [] if line.custom_id not in done
        ]
    if outputs:
        batch.output_file_id = store.files.add(
            f"{batch.id}_output.jsonl", "batch_output", b"".join(outputs)
        ).id
    if errors:
        batch.error_file_id = store.files.add(f"{batch.id}_error.jsonl", "batch_output", b"".join(errors)).id
    batch.move(final)
