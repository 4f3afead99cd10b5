"""What a teacher run did, in numbers: the summary the CLI prints and the Prefect artifact shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vqa_distill.atomic import atomic_write_text
from vqa_distill.dataset.build import DatasetReport
from vqa_distill.teacher.endpoint.pricing import estimate_cost
from vqa_distill.teacher.ledger.records import STATUS_UNUSABLE, TeacherRecord
from vqa_distill.teacher.run.batch_summary import BatchSummary
from vqa_distill.teacher.run.plan import RunPlan
from vqa_distill.teacher.run.resources import concurrency_used


class FailedItem(BaseModel):
    """One image x prompt that got no usable answer, and why."""

    image: str
    prompt: str
    status: str
    reason: str
    attempts: int


class RunSummary(BaseModel):
    """Counts, cost and outputs of one teacher run."""

    out: str
    model: str
    images_found: int
    files_skipped: int
    duplicate_files: int
    requests: int
    answered_now: int
    already_answered: int
    failed: int
    unusable: int
    not_asked: int
    prompt_tokens: int
    completion_tokens: int
    estimated_cost_usd: float | None
    failed_items: list[FailedItem]
    dataset: DatasetReport | None = None
    flow_run_id: str | None = None
    batch: BatchSummary | None = None  # set by a Batch API submit or collect
    concurrency: str | None = None  # the teacher's requests in flight: fixed, or auto's final and peak limit

    def table_rows(self) -> list[dict[str, Any]]:
        """Return the summary as metric/value rows (the artifact and the CLI print this)."""
        cost = "unknown model price" if self.estimated_cost_usd is None else f"${self.estimated_cost_usd:.4f}"
        rows = [
            ("images found", self.images_found),
            ("files skipped (not images)", self.files_skipped),
            ("duplicate files (same bytes, asked once)", self.duplicate_files),
            ("requests (image x prompt)", self.requests),
            ("answered now", self.answered_now),
            ("already answered (no call)", self.already_answered),
            ("failed", self.failed),
            ("unusable answers (length/filter/empty)", self.unusable),
            ("not asked this run", self.not_asked),
            ("prompt tokens (this run)", self.prompt_tokens),
            ("completion tokens (this run)", self.completion_tokens),
            (f"estimated cost ({self.model})", cost),
        ]
        if self.concurrency is not None:
            rows.append(("requests in flight", self.concurrency))
        if self.dataset:
            rows += [("train rows", self.dataset.train_rows), ("val rows", self.dataset.val_rows)]
        if self.batch is not None:
            rows += self.batch.table_rows()
        return [{"metric": name, "value": str(value)} for name, value in rows]


def summarize(
    plan: RunPlan,
    *,
    out: str,
    model: str,
    fresh: list[TeacherRecord],
    cached: int,
    failures: list[TeacherRecord],
    dataset: DatasetReport | None,
    flow_run_id: str | None,
    discovered: int = 0,
) -> RunSummary:
    """Combine the plan, this run's fresh answers (paid now), cache hits and failures into a summary.

    ``discovered`` counts requests first known during the run (questions mode: answers to the questions
    written now, and their judgements); they count as requests of the run.
    """
    prompt_tokens = sum(r.prompt_tokens or 0 for r in fresh)
    completion_tokens = sum(r.completion_tokens or 0 for r in fresh)
    unusable = [r for r in fresh if r.status == STATUS_UNUSABLE]
    items = [
        FailedItem(
            image=r.image_path,
            prompt=r.prompt,
            status=r.status,
            reason=r.error_message or r.error_class or "unknown",
            attempts=r.attempts,
        )
        for r in [*failures, *unusable]
    ]
    asked = len(fresh) + cached + len(failures)
    return RunSummary(
        out=out,
        model=model,
        images_found=len(plan.images),
        files_skipped=len(plan.skipped),
        duplicate_files=len(plan.duplicate_files),
        requests=len(plan.requests) + discovered,
        answered_now=len(fresh) - len(unusable),
        already_answered=plan.already_answered + cached,
        failed=len(failures),
        unusable=len(unusable),
        not_asked=len(plan.requests) + discovered - plan.already_answered - asked,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        estimated_cost_usd=estimate_cost(model, prompt_tokens, completion_tokens),
        failed_items=items,
        dataset=dataset,
        flow_run_id=flow_run_id,
        concurrency=concurrency_used(flow_run_id) if flow_run_id else None,
    )


SUMMARY_FILE = "summary.json"


def write_summary(out: str | Path, summary: RunSummary) -> Path:
    """Write ``<out>/summary.json`` atomically (a reader never sees half a summary)."""
    path = Path(out) / SUMMARY_FILE
    atomic_write_text(path, json.dumps(summary.model_dump(), indent=2, ensure_ascii=False))
    return path
