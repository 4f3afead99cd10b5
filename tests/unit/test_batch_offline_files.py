"""The offline Batch API's own parts: multipart uploads, list pages, and input files checked like the API does."""

from __future__ import annotations

import json

import httpx

from vqa_distill.offline_teacher.batch.files import list_page, parse_multipart
from vqa_distill.offline_teacher.batch.lines import read_input
from vqa_distill.offline_teacher.batch.store import BatchSettings

ENDPOINT = "/v1/chat/completions"


def test_a_multipart_upload_is_split_byte_for_byte() -> None:
    data = b'{"a": 1}\r\n{"b": "\xc3\xa9"}\n' + bytes(range(256))
    request = httpx.Request("POST", "http://x/v1/files", files={"file": ("in.jsonl", data, "application/jsonl")},
                            data={"purpose": "batch"})  # fmt: skip
    fields = parse_multipart(request.headers["content-type"], request.read())
    assert fields == {"purpose": (None, b"batch"), "file": ("in.jsonl", data)}


def test_list_pages_follow_the_after_cursor() -> None:
    items = [{"id": f"b{i}"} for i in range(5)]
    first = list_page(items, None, 2)
    assert [i["id"] for i in first["data"]] == ["b0", "b1"] and first["has_more"] and first["last_id"] == "b1"
    last = list_page(items, "b3", 2)
    assert [i["id"] for i in last["data"]] == ["b4"] and not last["has_more"]


def _line(custom_id: str, model: str = "gpt-4o-mini", url: str = ENDPOINT) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}).encode() + b"\n"


def test_input_files_are_checked_as_a_whole() -> None:
    settings = BatchSettings()
    lines, problems = read_input(_line("a") + _line("b"), ENDPOINT, settings)
    assert [line.custom_id for line in lines] == ["a", "b"] and problems == []
    bad = _line("a") + _line("a") + b"not json\n" + _line("c", url="/v1/embeddings")
    _, problems = read_input(bad, ENDPOINT, settings)
    assert [(p["code"], p["line"]) for p in problems] == [
        ("duplicate_custom_id", 2), ("invalid_json_line", 3), ("invalid_url", 4)
    ]  # fmt: skip
    _, problems = read_input(_line("a") + _line("b", model="gpt-4o"), ENDPOINT, settings)
    assert [p["code"] for p in problems] == ["mixed_models"]
    _, problems = read_input(_line("a") + _line("b"), ENDPOINT, BatchSettings(max_requests=1))
    assert [p["code"] for p in problems] == ["too_many_requests"]
    _, problems = read_input(_line("a"), ENDPOINT, BatchSettings(max_bytes=10))
    assert [p["code"] for p in problems] == ["file_too_large"]
    _, problems = read_input(_line("a"), ENDPOINT, BatchSettings(fail_validation="refused on purpose"))
    assert problems[0]["message"] == "refused on purpose"
