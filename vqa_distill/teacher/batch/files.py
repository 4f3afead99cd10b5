"""Batch input files: one JSONL line per request with the online request's body, split within the API's limits.

A line is ``{"custom_id": <content key>, "method": "POST", "url": "/v1/chat/completions", "body": ...}``
and its body is built by the client's own builders (``build_messages``, ``request_options``), so a
request costs and answers the same in a batch as online. Each image is prepared once within its pixel
budget; base64 makes it a third larger than its JPEG, which is what fills a file: the build says how
many such lines fit in one.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from vqa_distill import progress
from vqa_distill.errors import ConfigError, ImageError, PermanentTeacherError
from vqa_distill.teacher.answers.outcomes import failure_record
from vqa_distill.teacher.endpoint.client import request_body
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.prepare import PreparedImage
from vqa_distill.teacher.ledger.records import TeacherRecord, utc_now
from vqa_distill.teacher.run.resources import PreparedImages

BATCH_ENDPOINT: Final = "/v1/chat/completions"
DEFAULT_MAX_REQUESTS = 50_000  # lines per batch input file: the Batch API's limit
DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # bytes per batch input file: the Batch API's limit
MAX_REQUESTS_ENV = "VQA_DISTILL_BATCH_MAX_REQUESTS"  # lower limits, e.g. for a proxy with smaller ones
MAX_BYTES_ENV = "VQA_DISTILL_BATCH_MAX_BYTES"
PREPARE_AHEAD = 32  # images prepared at once (in worker threads) while lines are written in order


@dataclass(frozen=True)
class BatchLimits:
    """How much one batch input file may hold."""

    max_requests: int = DEFAULT_MAX_REQUESTS
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BatchLimits:
        """Return the limits, lowered by ``VQA_DISTILL_BATCH_MAX_REQUESTS`` / ``..._MAX_BYTES`` when set."""
        values: dict[str, int] = {}
        for name, variable in (("max_requests", MAX_REQUESTS_ENV), ("max_bytes", MAX_BYTES_ENV)):
            text = environ.get(variable)
            if text:
                try:
                    values[name] = int(text)
                except ValueError:
                    raise ConfigError(f"{variable} must be a whole number, got {text!r}") from None
                if values[name] < 1:
                    raise ConfigError(f"{variable} must be at least 1, got {text!r}")
        return cls(**values)


def batch_line(request: TeacherRequest, image: PreparedImage) -> bytes:
    """Return one input file line (newline included), keyed by the request's content key."""
    line = {
        "custom_id": request.key,
        "method": "POST",
        "url": BATCH_ENDPOINT,
        "body": request_body(request, image),
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass
class PartFile:
    """One input file on disk and the requests it holds, in line order."""

    path: Path
    requests: list[TeacherRequest] = field(default_factory=list)
    bytes: int = 0


@dataclass
class BuiltParts:
    """The input files of a submission, the requests that could not become a line, and the line sizes."""

    parts: list[PartFile]
    failures: list[TeacherRecord]
    lines: int
    line_bytes: int

    def lines_per_file(self, limits: BatchLimits) -> int | None:
        """Return how many lines of the average size fit in one file (None without lines)."""
        if not self.lines:
            return None
        return max(1, min(limits.max_requests, limits.max_bytes * self.lines // self.line_bytes))


class PartWriter:
    """Write lines into numbered files, starting a new one before a limit would be passed."""

    def __init__(self, folder: Path, limits: BatchLimits):
        self._folder = folder
        self._limits = limits
        self.parts: list[PartFile] = []
        self._handle: BinaryIO | None = None

    def add(self, request: TeacherRequest, line: bytes) -> None:
        """Append ``line`` to the current file, or to a new one when it would not fit."""
        current = self.parts[-1] if self.parts else None
        full = current is None or (
            len(current.requests) >= self._limits.max_requests
            or current.bytes + len(line) > self._limits.max_bytes
        )
        if full:
            self._roll()
        part = self.parts[-1]
        assert self._handle is not None
        self._handle.write(line)
        part.requests.append(request)
        part.bytes += len(line)

    def close(self) -> list[PartFile]:
        """Close the last file; return every part."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        return self.parts

    def _roll(self) -> None:
        self.close()
        part = PartFile(self._folder / f"part-{len(self.parts) + 1:04d}.jsonl")
        self._handle = part.path.open("wb")
        self.parts.append(part)


async def build_parts(
    requests: list[TeacherRequest],
    folder: Path,
    limits: BatchLimits,
    *,
    images: PreparedImages,
    flow_run_id: str | None,
) -> BuiltParts:
    """Prepare each image once, write every request as a line into part files; record what cannot be sent."""
    writer = PartWriter(folder, limits)
    failures: list[TeacherRecord] = []
    lines = line_bytes = 0
    tally = progress.begin(len(requests))  # a line is an item; it is paid for when its batch is collected
    progress.report(tally)
    try:
        for start in range(0, len(requests), PREPARE_AHEAD):
            chunk = requests[start : start + PREPARE_AHEAD]
            failed_before = len(failures)
            prepared = await asyncio.gather(*(images.get(r) for r in chunk), return_exceptions=True)
            for request, image in zip(chunk, prepared, strict=True):
                if isinstance(image, ImageError):
                    failures.append(_failed(request, image, flow_run_id))
                    continue
                if isinstance(image, BaseException):
                    raise image
                line = batch_line(request, image)
                if len(line) > limits.max_bytes:
                    too_big = PermanentTeacherError(
                        f"the request is {len(line)} bytes, over the batch file limit of {limits.max_bytes}: "
                        "lower max_pixels"
                    )
                    failures.append(_failed(request, too_big, flow_run_id))
                    continue
                writer.add(request, line)
                lines += 1
                line_bytes += len(line)
            tally.record("failed", count=len(failures) - failed_before)
            tally.advance(len(chunk))
            progress.report(tally)
    finally:
        parts = writer.close()
    return BuiltParts(parts=parts, failures=failures, lines=lines, line_bytes=line_bytes)


def _failed(request: TeacherRequest, error: BaseException, flow_run_id: str | None) -> TeacherRecord:
    return failure_record(request, error, attempts=1, flow_run_id=flow_run_id, started_at=utc_now())
