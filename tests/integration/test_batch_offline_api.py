"""The offline teacher's Batch API through the real ``openai`` client: files, batches, stages, injected outcomes."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from tests.support.batch_helpers import batch_admin, fast_batches, sync_client, wait_status
from tests.support.offline_teacher_helpers import picture_url, vision_messages

ENDPOINT = "/v1/chat/completions"


def _jsonl(bodies: list[dict[str, Any]]) -> bytes:
    lines = [
        {"custom_id": f"req-{i}", "method": "POST", "url": ENDPOINT, "body": b} for i, b in enumerate(bodies)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _body(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (40, 90, 200)) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "max_tokens": 300, "messages": vision_messages(picture_url(size, colour))}


def _submit(client: openai.OpenAI, bodies: list[dict[str, Any]], **metadata: str) -> Any:
    uploaded = client.files.create(file=("in.jsonl", _jsonl(bodies), "application/jsonl"), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h",
                                 metadata=metadata or None)  # fmt: skip


def _lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()] if file_id else []


def test_a_batch_moves_through_its_stages_and_answers_as_online(teacher: Any) -> None:
    batch_admin(teacher, {"stage_s": 0.3})  # slow enough to see every stage while polling
    teacher.set_limits(rpm=1)  # the online limit: batch lines are not counted against it
    client = sync_client(teacher)
    bodies = [_body(colour=(40 * i, 90, 200)) for i in range(3)]
    created = _submit(client, bodies, run="r1")
    assert (
        created.status == "validating"
        and created.metadata == {"run": "r1"}
        and created.completion_window == "24h"
    )
    seen = {created.status}
    while (batch := client.batches.retrieve(created.id)).status != "completed":
        time.sleep(0.02)
        seen.add(batch.status)
        assert batch.status in {"validating", "in_progress", "finalizing"}
    assert seen == {"validating", "in_progress", "finalizing"}
    assert batch.request_counts is not None and (
        batch.request_counts.total,
        batch.request_counts.completed,
    ) == (3, 3)
    assert batch.completed_at and batch.in_progress_at and batch.error_file_id is None
    output = {line["custom_id"]: line for line in _lines(client, batch.output_file_id)}
    assert set(output) == {"req-0", "req-1", "req-2"} and all(
        line["error"] is None for line in output.values()
    )

    online = client.chat.completions.create(**bodies[1])  # the one request the online limit allows
    answer = output["req-1"]["response"]
    assert answer["status_code"] == 200 and answer["request_id"].startswith("req_")
    assert answer["body"]["choices"][0]["message"]["content"] == online.choices[0].message.content
    assert answer["body"]["usage"] == online.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert teacher.stats()["totals"]["requests"] == 1  # batch lines are not online requests

    input_file = client.files.retrieve(created.input_file_id)
    assert input_file.purpose == "batch" and client.files.content(input_file.id).content == _jsonl(bodies)


def test_batches_are_listed_newest_first_a_page_at_a_time(teacher: Any) -> None:
    fast_batches(teacher)
    client = sync_client(teacher)
    ids = [_submit(client, [_body()]).id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    rest = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert [b.id for b in client.batches.list(limit=1)] == ids[::-1]  # the client follows the cursor
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_unknown")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-unknown")


def test_some_lines_fail_with_their_status_and_message(teacher: Any) -> None:
    fast_batches(teacher)
    teacher.set_faults([{"kind": "400", "match_image_size": "40x40"}])
    client = sync_client(teacher)
    batch = wait_status(client, _submit(client, [_body(), _body((40, 40))]).id, {"completed"})
    assert batch.request_counts is not None and (
        batch.request_counts.completed,
        batch.request_counts.failed,
    ) == (1, 1)
    [error] = _lines(client, batch.error_file_id)
    assert error["custom_id"] == "req-1" and error["response"]["status_code"] == 400
    assert "refused" in error["response"]["body"]["error"]["message"]
    assert [line["custom_id"] for line in _lines(client, batch.output_file_id)] == ["req-0"]


def test_a_refused_file_fails_the_whole_batch(teacher: Any) -> None:
    fast_batches(teacher, fail_validation="The input file is not valid (injected).")
    client = sync_client(teacher)
    batch = wait_status(client, _submit(client, [_body()]).id, {"failed"})
    assert batch.errors is not None and batch.errors.data
    assert batch.errors.data[0].message == "The input file is not valid (injected)."
    assert batch.output_file_id is None and batch.failed_at


def test_an_expired_batch_keeps_its_answered_lines(teacher: Any) -> None:
    fast_batches(teacher, max_lines=1, window_s=0.5)
    client = sync_client(teacher)
    batch = wait_status(client, _submit(client, [_body(colour=(i, 9, 9)) for i in range(3)]).id, {"expired"})
    assert [line["custom_id"] for line in _lines(client, batch.output_file_id)] == ["req-0"]
    errors = _lines(client, batch.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("req-1", "batch_expired"),
        ("req-2", "batch_expired"),
    ]
    assert batch.expired_at


def test_a_cancelled_batch_keeps_its_answered_lines(teacher: Any) -> None:
    fast_batches(teacher, max_lines=1)  # one line, then it waits: the cancel comes in between
    client = sync_client(teacher)
    created = _submit(client, [_body(colour=(i, 9, 9)) for i in range(2)])
    wait_status(client, created.id, {"in_progress"})
    assert client.batches.cancel(created.id).status == "cancelling"
    batch = wait_status(client, created.id, {"cancelled"})
    answered = _lines(client, batch.output_file_id)
    cancelled = _lines(client, batch.error_file_id)
    assert len(answered) + len(cancelled) == 2 and all(
        e["error"]["code"] == "batch_cancelled" for e in cancelled
    )
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(created.id)
