"""The ``generate`` flow: discover, skip what is paid for, ask the rest, build the dataset, publish.

One ``ask-teacher`` task run per image x prompt, awaited together on this flow's event loop with a
bound on runs in flight (docs/architecture.md says why not ``.map``). In questions mode each image x
prompt gets an ``ask-questions`` run, then one ``ask-teacher`` run per question (and a ``judge-answer``
run with a judge), under the same bound. The flow ends Failed, saying how many, when any request
failed, so the UI's Retry button re-asks just those.

With ``params.shards`` > 1 the same plan is asked by ``teacher-shard`` runs on cpu-pool, one per part
(``flows/sharded.py``); this run waits for them and builds the dataset once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.batch_submit import submit_in_run
from flows.sharded import ask_in_shards
from tasks.questions import question_stages
from tasks.report import publish_run_artifacts
from tasks.teacher import ask_teacher, with_retries
from vqa_distill.dataset.qa_build import build_run_dataset
from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.answers.fanout import FanOutOutcome, ask_all
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.fanout import ask_in_stages
from vqa_distill.teacher.run.plan import RunPlan, plan_run
from vqa_distill.teacher.run.resources import open_resources, registered
from vqa_distill.teacher.run.summary import RunSummary, summarize, write_summary
from vqa_distill.teacher.shards.split import ShardRun, unfinished_message


async def ask_planned(plan: RunPlan, params: TeacherParams, ledger: Ledger) -> FanOutOutcome:
    """Check the endpoint once, then run one ask-teacher task per planned request."""
    resources = await open_resources(params, ledger)
    async with registered(flow_run.id, resources):
        if params.preflight:
            for model in dict.fromkeys(m for m in (params.model, params.judge_model) if m):
                await check_endpoint(resources.client, model)
        if plan.staged is not None:  # questions mode: per image, its questions, then their answers
            stages = question_stages(params)
            return await ask_in_stages(
                plan.staged, stages, params, concurrency=params.concurrency, flow_run_id=flow_run.id, ledger=ledger
            )
        ask = with_retries(ask_teacher, params)
        return await ask_all(plan.to_ask, ask, concurrency=params.concurrency, flow_run_id=flow_run.id, ledger=ledger)


def said_once(exc: FatalRunError) -> Any:
    """End the run Failed with the reason in one log line: a wrong key, endpoint or database is not a bug,
    and a traceback would bury the reason."""
    get_run_logger().error("%s", exc)
    return Failed(message=str(exc), data=exc)


@flow(name="generate", log_prints=False, validate_parameters=True)
async def generate(params: TeacherParams, only_keys: list[str] | None = None) -> RunSummary:
    """Ask the teacher about every image of ``params.images`` not answered yet; build the dataset.

    Args:
        params: The teacher stage: images, prompts, endpoint, model, rate limits, retries, dataset split.
            The API key is not a parameter: it comes from OPENAI_API_KEY or the named Secret block.
        only_keys: Re-ask only these request keys (set by retry-failed); leave empty to ask every image.
    """
    logger = get_run_logger()
    if params.batch:  # the Batch API: submit and return at once; collect-batches records the answers
        return await submit_in_run(params, only_keys)
    try:
        ledger = Ledger(params.out)  # a shared ledger's database may refuse: a user error, said once
    except FatalRunError as exc:
        return said_once(exc)
    with ledger:
        try:
            plan = plan_run(params, ledger, set(only_keys) if only_keys is not None else None)
            logger.info(
                "%d images, %d requests: %d already answered, %d to ask",
                len(plan.images), len(plan.requests), plan.already_answered, plan.pending,
            )  # fmt: skip
            shards: list[ShardRun] = []
            if params.shards > 1:
                outcome, shards = await ask_in_shards(plan, params, ledger, only_keys)
            else:
                outcome = await ask_planned(plan, params, ledger) if plan.pending else FanOutOutcome()
        except FatalRunError as exc:
            return said_once(exc)
        ledger.export()
        dataset = build_run_dataset(ledger, plan, params)
    summary = summarize(
        plan, out=str(Path(params.out).resolve()), model=params.model, fresh=outcome.fresh, cached=outcome.cached,
        failures=outcome.failures, dataset=dataset, flow_run_id=flow_run.id, discovered=outcome.discovered,
    )  # fmt: skip
    write_summary(params.out, summary)
    await publish_run_artifacts(summary)
    logger.info("answered now %d, failed %d, train rows %d", summary.answered_now, summary.failed, dataset.train_rows)
    unfinished = unfinished_message(shards)
    if summary.failed or unfinished:
        failed = f"{summary.failed} of {outcome.asked} requests failed (see failed.jsonl in {params.out})"
        message = "; ".join(part for part in (failed if summary.failed else "", unfinished) if part)
        return Failed(message=message, data=summary)  # type: ignore[return-value]
    return summary
