"""The ``generate`` flow: discover, skip what is paid for, ask the rest, build the dataset, publish.

One ``ask-teacher`` task run per image x prompt, awaited together on this flow's event loop with a
bound on runs in flight (docs/architecture.md says why not ``.map``). In questions mode each image x
prompt gets an ``ask-questions`` run, then one ``ask-teacher`` run per question (and a ``judge-answer``
run with a judge), under the same bound. With ``params.shards`` > 1 the plan is asked by
``teacher-shard`` runs on cpu-pool (``flows/sharded.py``). The flow ends Failed, saying how many,
when any request failed, so the UI's Retry button re-asks just those. While it runs, its progress and
cost/ETA artifacts move a few times a minute (``teacher/run/live.py``, docs/progress.md).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.batch_submit import submit_in_run
from flows.sharded import ask_in_shards
from tasks.questions import question_stages
from tasks.report import publish_run_artifacts, teacher_live
from tasks.teacher import ask_teacher, with_retries
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.teacher.answers.fanout import FanOutOutcome, ask_all
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.fanout import ask_in_stages
from vqa_distill.teacher.run.finish import fanout_summary, finish_run, run_end
from vqa_distill.teacher.run.live import live_progress
from vqa_distill.teacher.run.plan import RunPlan, plan_run
from vqa_distill.teacher.run.resources import open_resources, registered
from vqa_distill.teacher.run.summary import RunSummary
from vqa_distill.teacher.shards.polling import ShardRun, unfinished_message


async def ask_planned(plan: RunPlan, params: TeacherParams, ledger: Ledger) -> FanOutOutcome:
    """Check the endpoint once, then run one ask-teacher task per planned request (questions: per stage)."""
    resources = await open_resources(params, ledger)
    async with registered(flow_run.id, resources):
        if params.preflight:
            for model in dict.fromkeys(m for m in (params.model, params.judge_model) if m):
                await check_endpoint(resources.client, model)
        if plan.staged is not None:
            stages = question_stages(params)
            return await ask_in_stages(plan.staged, stages, params, concurrency=params.concurrency,
                                       flow_run_id=flow_run.id, ledger=ledger)  # fmt: skip
        ask = with_retries(ask_teacher, params)
        return await ask_all(plan.to_ask, ask, concurrency=params.concurrency, flow_run_id=flow_run.id, ledger=ledger)


@flow(name="generate", log_prints=False, validate_parameters=True)
@fatal_errors_fail_the_run
async def generate(params: TeacherParams, only_keys: list[str] | None = None) -> RunSummary:
    """Ask the teacher about every image of ``params.images`` not answered yet; build the dataset.

    Args:
        params: The teacher stage: images, prompts, endpoint, model, rate limits, retries, dataset split.
            The API key is not a parameter: it comes from OPENAI_API_KEY or the named Secret block.
        only_keys: Re-ask only these request keys (set by retry-failed); leave empty to ask every image.
    """
    async with live_progress(teacher_live(params)) as live:  # the last update follows finish_run's artifacts
        if params.batch:  # the Batch API: submit and return at once; collect-batches records the answers
            return await submit_in_run(params, only_keys)
        with Ledger(params.out) as ledger:  # a shared ledger's database may refuse: a user error, said once
            plan = plan_run(params, ledger, set(only_keys) if only_keys is not None else None)
            get_run_logger().info("%s", plan.describe())
            shards: list[ShardRun] = []
            if params.shards > 1:
                outcome, shards = await ask_in_shards(plan, params, ledger, only_keys, live)
            else:
                outcome = await ask_planned(plan, params, ledger) if plan.pending else FanOutOutcome()
            summarize_with = fanout_summary(plan, params, outcome, flow_run.id)
            summary = await finish_run(ledger, params.out, summarize_with, publish_run_artifacts, plan=plan,
                                       params=params)  # fmt: skip
    return run_end(summary, outcome.asked, unfinished_message(shards))
