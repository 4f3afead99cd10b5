"""The ms-swift training row format: build one row, and say what is wrong with one.

A row is ``{"messages": [...], "images": [...]}``; each ``<image>`` tag in the messages consumes one
entry of ``images``. ms-swift silently drops rows of a second format in a file and rows whose tags and
images disagree, so every writer and every reader of a dataset goes through ``row_problems``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

IMAGE_TAG = "<image>"
ROLES = ("system", "user", "assistant")


def make_row(*, image_path: str, prompt: str, answer: str, system: str | None = None) -> dict[str, Any]:
    """Return one single-image, single-turn training row in ms-swift's ``messages`` format."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": f"{IMAGE_TAG}{prompt}"})
    messages.append({"role": "assistant", "content": answer})
    return {"messages": messages, "images": [image_path]}


def make_conversation_row(
    *, image_path: str, turns: Sequence[tuple[str, str]], system: str | None = None
) -> dict[str, Any]:
    """Return one multi-turn row about one image: the image tag opens the first user turn only.

    ms-swift (and the student's preflight) count one ``<image>`` per entry of ``images``; later turns
    ask about the same image without repeating it, as LLaVA's conversation data does.
    """
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for number, (question, answer) in enumerate(turns):
        messages.append({"role": "user", "content": f"{IMAGE_TAG}{question}" if number == 0 else question})
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages, "images": [image_path]}


def row_format(row: Any) -> str:
    """Name the row's format as ms-swift would detect it (``messages``, ``query-response``, ...)."""
    if not isinstance(row, dict):
        return type(row).__name__
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "query" in row or "response" in row:
        return "query-response"
    if "instruction" in row:
        return "alpaca"
    return "unknown(" + ",".join(sorted(row)) + ")"


def row_problems(row: Any) -> list[str]:
    """Return every reason this row would be dropped or mis-trained by ms-swift (empty when it is fine).

    Structural checks only: file existence and decoding are the caller's business (they need I/O).
    """
    if not isinstance(row, dict):
        return [f"row is a JSON {type(row).__name__}, not an object"]
    problems: list[str] = []
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    images = row.get("images", [])
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        problems.append("'images' must be a list of non-empty path strings")
        images = []
    roles: list[str] = []
    tag_count = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            problems.append(f"message {index} must be an object with a string 'content'")
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"message {index} has unknown role {role!r}")
            continue
        roles.append(role)
        tag_count += message["content"].count(IMAGE_TAG)
        if role == "assistant" and not message["content"].strip():
            problems.append(f"message {index} (assistant) is empty")
    problems.extend(_role_order_problems(roles))
    if tag_count != len(images):
        problems.append(f"{tag_count} {IMAGE_TAG} tag(s) but {len(images)} image(s)")
    return problems


def _role_order_problems(roles: Sequence[str]) -> list[str]:
    """Check: optional leading system, then user/assistant alternating, ending with assistant."""
    body = list(roles[1:] if roles and roles[0] == "system" else roles)
    if "system" in body:
        return ["a system message may only come first"]
    if not body:
        return ["no user/assistant turns"]
    for index, role in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            return [f"roles must alternate user/assistant; turn {index} is {role!r}"]
    if body[-1] != "assistant":
        return ["the last message must be the assistant's answer"]
    return []


def dumps_row(row: dict[str, Any]) -> str:
    """Serialise a row as one JSONL line (UTF-8 kept readable, no trailing newline)."""
    return json.dumps(row, ensure_ascii=False)
