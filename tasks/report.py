"""The ``publish-artifacts`` task: a teacher run's summary, failed images and dataset as Prefect artifacts.

The failed-images table is created on every run, empty when nothing failed: artifacts are versioned
by key, so skipping it would leave an old failure showing as the latest. The live artifacts (progress,
cost and ETA while a run goes) are named here too, one ``LiveSpec`` per kind of run
(``teacher/run/live.py`` keeps them current).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from vqa_distill.dataset.review import review_markdown
from vqa_distill.progress.text import Limits
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.live import LiveSpec
from vqa_distill.teacher.run.summary import RunSummary

SUMMARY_KEY = "teacher-summary"
FAILED_KEY = "teacher-failed-images"
DATASET_KEY = "teacher-dataset"
QUALITY_KEY = "teacher-quality"  # questions mode: rows kept and left out by reason, the judge's scores
REVIEW_KEY = "teacher-review"  # where review.html is, and a few of its rows
PROGRESS_KEY = "teacher-progress"  # live: the share of the run done
COST_KEY = "teacher-cost-eta"  # live: counts, spend and projection, rates against the limits, ETA
SHARD_PROGRESS_KEY = "teacher-shard-progress"
SHARD_COST_KEY = "teacher-shard-cost-eta"
COLLECT_LIVE = LiveSpec("collect-progress", "collect-cost-eta", "Batch collect", "run folders")


def teacher_live(params: TeacherParams, *, shard: bool = False) -> LiveSpec:
    """Return the live artifacts of a teacher run (or one shard run): what they count, against which limits."""
    keys = (SHARD_PROGRESS_KEY, SHARD_COST_KEY) if shard else (PROGRESS_KEY, COST_KEY)
    if params.batch:  # a submit writes lines; nothing is asked or paid until the collect
        return LiveSpec(*keys, "Batch API submit", "lines")
    if params.questions is None:
        unit = "requests"
    elif params.shards > 1 and not shard:  # the parent reads requests from the ledger: units x questions
        unit = "requests (estimated)"
    else:
        unit = "image x prompt units"
    return LiveSpec(*keys, "Teacher shard" if shard else "Teacher run", unit, Limits(rpm=params.rpm, tpm=params.tpm))


@task(name="publish-artifacts", cache_policy=NO_CACHE)
async def publish_run_artifacts(summary: RunSummary) -> None:
    """Create the three artifacts of a teacher run (summary, failed images, dataset)."""
    await acreate_table_artifact(
        key=SUMMARY_KEY, table=summary.table_rows(), description=f"Teacher run into {summary.out}"
    )
    failed_columns: dict[str, list[str | int]] = {"image": [], "prompt": [], "status": [], "reason": [], "attempts": []}
    for item in summary.failed_items:
        for column, value in item.model_dump().items():
            failed_columns[column].append(value)
    await acreate_table_artifact(
        key=FAILED_KEY,
        table=failed_columns,
        description=f"{len(summary.failed_items)} image request(s) without a usable answer",
    )
    dataset = summary.dataset
    if dataset is None:
        markdown = "No dataset was built."
    else:
        markdown = "\n".join(
            [
                "# Dataset",
                f"- train: `{dataset.train_path}` ({dataset.train_rows} rows)",
                f"- val: `{dataset.val_path}` ({dataset.val_rows} rows)" if dataset.val_path else "- val: none",
                f"- images: {dataset.images}, prompts: {dataset.prompts}",
                f"- dropped: {dataset.dropped_invalid} invalid, {dataset.dropped_duplicates} duplicate",
                f"- answer length: {dataset.answer_words_mean} words on average, {dataset.answer_words_max} at most",
            ]
        )
    await acreate_markdown_artifact(key=DATASET_KEY, markdown=markdown)
    if dataset is not None and dataset.quality is not None:
        await acreate_markdown_artifact(
            key=QUALITY_KEY, markdown=dataset.quality.markdown(), description=f"rows left out: {dataset.rejected_path}"
        )
    if dataset is not None and dataset.review_path:
        await acreate_markdown_artifact(
            key=REVIEW_KEY, markdown=review_markdown(dataset.review_path, dataset.review_preview)
        )


BATCHES_KEY = "teacher-batches"


@task(name="publish-batch-table", cache_policy=NO_CACHE)
async def publish_batch_table(rows: list[dict[str, Any]]) -> None:
    """Create the ``teacher-batches`` artifact: each Batch API batch, its status, counts and age."""
    in_flight = sum(1 for row in rows if row["collected"] == "no")
    await acreate_table_artifact(
        key=BATCHES_KEY, table=rows, description=f"{len(rows)} batch(es), {in_flight} not collected yet"
    )
