"""The cases an evaluation judges: one (image, question, teacher's answer) per dataset row, with its kind and prompt.

Any ms-swift ``messages`` jsonl works; a run's ``val.jsonl`` also has a ``val.meta.jsonl`` beside it
(line by line: the question kind, the user's prompt, the image's sha256), which the breakdown by
kind and prompt reads. Without it every case is of kind ``unknown``, its prompt is its question, and
its sha256 is the image file's (the judge's request keys hash it: two pictures never share a verdict).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vqa_distill.dataset.build import meta_file
from vqa_distill.errors import ConfigError
from vqa_distill.teacher.images.discovery import file_sha256

KIND_UNKNOWN = "unknown"  # a dataset without its meta file
IMAGE_TAG = "<image>"


@dataclass(frozen=True)
class EvalCase:
    """One question about one image: what the local models are asked and what the teacher answered.

    ``messages`` is the prompt as the student saw it in training (system and earlier turns included,
    the teacher's answer left out); ``question`` is the last user turn without its image tag.
    """

    index: int
    image: str
    question: str
    reference: str
    kind: str
    prompt: str
    messages: list[dict[str, str]]
    sha256: str | None = None
    source: str | None = None  # the original file the row's picture was copied from, when the metadata says

    def to_json(self) -> dict[str, Any]:
        """The case as ``eval.json`` and the inference worker read it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalCase:
        """Read what ``to_json`` wrote."""
        return cls(**data)


def load_cases(dataset: Path, *, limit: int | None = None, system: str | None = None) -> list[EvalCase]:
    """Read up to ``limit`` cases from ``dataset``: rows ending with an assistant answer about one image.

    Raises ConfigError, naming the file and line, for a file that is missing or a line that is not JSON.
    Rows without a system message get ``system`` (as ms-swift's ``--system`` gave them in training).
    """
    if not dataset.is_file():
        raise ConfigError(f"no dataset at {dataset}: pass a run's val.jsonl or an ms-swift jsonl")
    lines = dataset.read_text(encoding="utf-8").splitlines()
    metas = _metas(dataset, lines)
    cases: list[EvalCase] = []
    for number, row in _rows(dataset, lines):
        if limit is not None and len(cases) >= limit:
            break
        case = _case(row, len(cases), metas.get(number, {}), system)
        if case is not None:
            cases.append(case)
    return cases


def _rows(path: Path, lines: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number} is not JSON ({exc})") from None
        if isinstance(row, dict):
            yield number, row


def _metas(dataset: Path, lines: list[str]) -> dict[int, dict[str, Any]]:
    """Line number -> metadata, when the meta file has as many lines as the dataset (else none: it is stale).

    A meta file that is not JSON lines (cut short, edited by hand) is no better than a stale one: ignored.
    """
    path = meta_file(dataset)
    if not path.is_file():
        return {}
    try:
        metas = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except ValueError:
        return {}
    if not all(isinstance(meta, dict) for meta in metas):
        return {}
    numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
    return dict(zip(numbers, metas, strict=True)) if len(metas) == len(numbers) else {}


def _case(row: dict[str, Any], index: int, meta: dict[str, Any], system: str | None) -> EvalCase | None:
    # ms-swift's own val_dataset.jsonl stores each message as a JSON string and images as {"path", "bytes"}.
    messages = [json.loads(m) if isinstance(m, str) else m for m in row.get("messages") or []]
    images = [i["path"] if isinstance(i, dict) else i for i in row.get("images") or []]
    if len(messages) < 2 or messages[-1].get("role") != "assistant" or len(images) != 1:
        return None
    prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages[:-1]]
    if prompt[0]["role"] != "system" and system:
        prompt.insert(0, {"role": "system", "content": system})
    users = [m["content"] for m in prompt if m["role"] == "user"]
    question = users[-1].replace(IMAGE_TAG, "").strip() if users else ""
    return EvalCase(
        index=index,
        image=str(images[0]),
        question=question,
        reference=str(messages[-1]["content"]),
        kind=str(meta.get("kind") or KIND_UNKNOWN),
        prompt=str(meta.get("prompt") or question),
        messages=prompt,
        sha256=meta.get("sha256") or _image_sha256(str(images[0])),
        source=meta.get("source"),
    )


def _image_sha256(image: str) -> str | None:
    """The picture's own hash, for rows without meta: a judge's request key must tell two pictures apart."""
    path = Path(image)
    return file_sha256(path) if path.is_file() else None
