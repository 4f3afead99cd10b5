"""The teacher stage as a Prefect flow: discover, skip what is paid for, ask the rest, build the dataset.

One ``ask-teacher`` task run per image x prompt, awaited together in this async flow with a bound on
runs in flight (not ``.map`` on the thread pool: that costs 20-50 ms a run and breaks the per-loop
client and rate limiter; see DESIGN.md). The flow ends Failed, saying how many, when any request
failed, so the UI's Retry button re-asks just those (answered ones are skipped by the ledger and the
task cache).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from tasks.report import publish_run_artifacts
from tasks.teacher import ask_teacher
from vqa_distill import progress
from vqa_distill.atomic import atomic_write_text
from vqa_distill.dataset.build import build_dataset
from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.client import make_client, preflight
from vqa_distill.teacher.gate import RateGate
from vqa_distill.teacher.ledger import STATUS_FAILED, Ledger, TeacherRecord, utc_now
from vqa_distill.teacher.outcomes import failure_record
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.plan import RunPlan, plan_run
from vqa_distill.teacher.request import TeacherRequest
from vqa_distill.teacher.resources import (
    IMAGE_CACHE_SLACK,
    PreparedImages,
    TeacherRuntime,
    install_runtime,
    uninstall_runtime,
)
from vqa_distill.teacher.secrets import resolve_api_key
from vqa_distill.teacher.summary import RunSummary, summarize

SUMMARY_FILE = "summary.json"
RETRY_JITTER_FACTOR = 0.5  # delays vary by up to +-50%, so retries of a burst of 429s do not stampede


class RunOutcome:
    """What the fan-out produced: fresh records (paid now), cache hits, and failed records."""

    def __init__(self) -> None:
        self.fresh: list[TeacherRecord] = []
        self.cached = 0
        self.failures: list[TeacherRecord] = []


async def ask_all(plan: RunPlan, params: TeacherParams, ledger: Ledger) -> RunOutcome:
    """Run one ask-teacher task per request, at most ``concurrency`` in flight; collect the outcomes."""
    api_key = await resolve_api_key(params.api_key_block)
    client = make_client(base_url=params.base_url, api_key=api_key.get_secret_value(), timeout=params.timeout)
    if params.preflight:
        await preflight(client, params.model)
    runtime = TeacherRuntime(
        client=client,
        gate=RateGate(params.rpm, params.tpm),
        ledger=Ledger(params.out),
        images=PreparedImages(capacity=params.concurrency + IMAGE_CACHE_SLACK),
    )
    install_runtime(params.out, runtime)
    task = ask_teacher.with_options(
        retries=params.max_retries,
        retry_delay_seconds=[params.retry_delay * 2**attempt for attempt in range(params.max_retries)] or 0,
        retry_jitter_factor=RETRY_JITTER_FACTOR,
    )
    in_flight = asyncio.Semaphore(params.concurrency)
    run_id = flow_run.id
    outcome = RunOutcome()
    total = len(plan.to_ask)
    done = 0

    async def ask_one(request: TeacherRequest) -> None:
        nonlocal done
        async with in_flight:
            try:
                answered: dict[str, Any] = await task(request, params.out)
            except Exception as exc:  # the task recorded why in the ledger; the UI shows it too
                outcome.failures.append(failure_of(request, ledger, exc))
            else:
                collect(TeacherRecord(**answered), request, run_id, outcome, ledger)
        done += 1
        progress.report(done, total)

    try:
        progress.report(0, total)
        await asyncio.gather(*(ask_one(request) for request in plan.to_ask))
    finally:
        uninstall_runtime(params.out)
        await runtime.aclose()
    return outcome


def collect(
    record: TeacherRecord, request: TeacherRequest, run_id: str | None, outcome: RunOutcome, ledger: Ledger
) -> None:
    """File an answer as fresh (paid by this run) or cached (another run's, copied into this ledger).

    The record names the flow run that paid for it, so a cache hit is told apart without reading the
    task run's state back from the API.
    """
    if record.flow_run_id == run_id:
        outcome.fresh.append(record)
        return
    # Answered by an earlier run, maybe into another folder: no call was made; keep it here too.
    record.image_path, record.rel_path = request.image_path, request.rel_path
    ledger.record(record)
    outcome.cached += 1


def failure_of(request: TeacherRequest, ledger: Ledger, error: BaseException) -> TeacherRecord:
    """Return the failure the task recorded, or one made from the error when the task died first."""
    failed = ledger.get(request.key)
    if failed is not None and failed.status == STATUS_FAILED:
        return failed
    return failure_record(request, error, attempts=1, flow_run_id=flow_run.id, started_at=utc_now())


@flow(name="generate", log_prints=False, validate_parameters=True)
async def generate(params: TeacherParams, only_keys: list[str] | None = None) -> RunSummary:
    """Ask the teacher about every image of ``params.images`` not answered yet; build the dataset.

    Args:
        params: The teacher stage: images, prompts, endpoint, model, rate limits, retries, dataset split.
            The API key is not a parameter: it comes from OPENAI_API_KEY or the named Secret block.
        only_keys: Re-ask only these request keys (set by retry-failed); leave empty to ask every image.
    """
    logger = get_run_logger()
    with Ledger(params.out) as ledger:
        try:
            plan = plan_run(params, ledger, set(only_keys) if only_keys is not None else None)
            logger.info(
                "%d images, %d requests: %d already answered, %d to ask",
                len(plan.images), len(plan.requests), plan.already_answered, len(plan.to_ask),
            )
            outcome = await ask_all(plan, params, ledger) if plan.to_ask else RunOutcome()
        except FatalRunError as exc:
            # Said once, plainly: a wrong key or endpoint is not a bug, a traceback would bury the reason.
            logger.error("%s", exc)
            return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
        ledger.export()
        dataset = build_dataset(ledger, params.out, keys=plan.keys, val_ratio=params.val_ratio, seed=params.seed)
    summary = summarize(
        plan, out=str(Path(params.out).resolve()), model=params.model, fresh=outcome.fresh, cached=outcome.cached,
        failures=outcome.failures, dataset=dataset, flow_run_id=flow_run.id,
    )
    atomic_write_text(Path(params.out) / SUMMARY_FILE, json.dumps(summary.model_dump(), indent=2, ensure_ascii=False))
    await publish_run_artifacts(summary)
    logger.info("answered now %d, failed %d, train rows %d", summary.answered_now, summary.failed, dataset.train_rows)
    if summary.failed:
        return Failed(  # type: ignore[return-value]
            message=f"{summary.failed} of {len(plan.to_ask)} requests failed (see failed.jsonl in {params.out})",
            data=summary,
        )
    return summary
