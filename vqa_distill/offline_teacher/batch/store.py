"""What the offline Batch API keeps: the batches, their files, and the settings that steer their clock.

A batch moves validating -> in_progress -> finalizing -> completed, each stage lasting ``stage_s``
seconds (tests set a small value with ``PUT /_admin/batches``). Injected outcomes: ``fail_validation``
(the whole file is refused: status ``failed`` with ``errors``), ``max_lines`` (running batches answer
that many lines, then hold until the setting is raised, they are cancelled, or their ``window_s`` runs
out: ``expired`` with partial results), and per-line failures through the ordinary fault rules. A batch
keeps the other settings of the moment it was created.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from vqa_distill.offline_teacher.batch.files import FileStore

DEFAULT_STAGE_S = 1.0  # seconds of validating, of in_progress at least, and of finalizing
COMPLETION_WINDOW_S = 24 * 3600  # the only window the API offers: "24h"
MAX_BATCH_REQUESTS = 50_000  # lines per input file (the API's limit)
MAX_BATCH_BYTES = 200 * 1024 * 1024  # bytes per input file (the API's limit)
ACTIVE_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})


class BatchSettings(BaseModel):
    """Body of ``PUT /_admin/batches``; a batch keeps the settings of the moment it was created."""

    model_config = ConfigDict(extra="forbid")

    stage_s: float = Field(default=DEFAULT_STAGE_S, ge=0)
    window_s: float = Field(default=COMPLETION_WINDOW_S, gt=0)  # the completion window, sped up
    max_lines: int | None = Field(default=None, ge=0)  # lines answered per batch before it holds (live)
    fail_validation: str | None = None  # refuse every input file with this message
    max_requests: int = Field(default=MAX_BATCH_REQUESTS, ge=1)
    max_bytes: int = Field(default=MAX_BATCH_BYTES, ge=1)


@dataclass
class StoredBatch:
    """One batch and its progress; the runner task mutates it from the event loop."""

    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    settings: BatchSettings
    created_t: float = field(default_factory=time.time)  # the clock's start (created_at is whole seconds)
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    model: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    answered_ids: list[str] = field(default_factory=list)  # custom_ids answered, in order (for tests)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def move(self, status: str) -> None:
        """Enter ``status`` now, stamping its ``<status>_at`` time."""
        self.status = status
        stamp = {
            "in_progress": "in_progress_at",
            "finalizing": "finalizing_at",
            "completed": "completed_at",
            "failed": "failed_at",
            "expired": "expired_at",
            "cancelling": "cancelling_at",
            "cancelled": "cancelled_at",
        }.get(status)
        if stamp:
            self.times[stamp] = int(time.time())

    def to_json(self) -> dict[str, Any]:
        """Return the API's batch object."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self.errors_json(),
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_t),
            "expires_at": int(self.created_t + self.settings.window_s),
            **{
                name: self.times.get(name)
                for name in (
                    "in_progress_at",
                    "finalizing_at",
                    "completed_at",
                    "failed_at",
                    "expired_at",
                    "cancelling_at",
                    "cancelled_at",
                )
            },
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
            "model": self.model,
        }

    def errors_json(self) -> dict[str, Any] | None:
        """Return the ``errors`` object of a batch refused in validation."""
        return {"object": "list", "data": self.errors} if self.errors else None


class BatchStore:
    """The files, the batches (newest last) and the settings of one server."""

    def __init__(self) -> None:
        self.files = FileStore()
        self.batches: dict[str, StoredBatch] = {}
        self.settings = BatchSettings()
        self._serial = itertools.count()

    def new_id(self) -> str:
        """Return a fresh batch id, sortable by creation."""
        return f"batch_{next(self._serial):08d}{uuid.uuid4().hex[:16]}"

    def reset(self) -> None:
        """Stop every running batch and forget batches, files and settings."""
        for batch in self.batches.values():
            if batch.task is not None:
                batch.task.cancel()
        self.batches.clear()
        self.files.clear()
        self.settings = BatchSettings()

    def snapshot(self) -> dict[str, Any]:
        """Return the settings and, per batch, its status and the custom_ids it answered (for tests)."""
        return {
            "settings": self.settings.model_dump(),
            "batches": [
                {"id": b.id, "status": b.status, "total": b.total, "answered": b.answered_ids}
                for b in self.batches.values()
            ],
        }


def batch_store_of(request: Request) -> BatchStore:
    """Return the app's batch store."""
    store: BatchStore = request.app.state.batch_store
    return store
