"""The judge's tasks: ``judge-answer`` (a rubric score of one answer) and ``judge-pair`` (two answers compared).

One run per call, named after what it judges. Retried on transient errors only and cached by the
request's content key with persisted results, so a rerun, a retried task run or a flow run retried
from the UI pays no judge call twice.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from tasks.teacher import ask_and_record, retry_only_transient, run_label
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_JUDGE
from vqa_distill.teacher.qa.judge import judge_record
from vqa_distill.teacher.qa.pairwise import pairwise_record


def judge_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image bytes, question, answer, judge model and parameters are one score."""
    request: TeacherRequest = parameters["request"]
    return f"judge-answer-{request.key}"


def judge_run_name() -> str:
    """Name each run after the question it scores: ``judge-answer[line 2/cat_001.jpg #3]``."""
    return f"judge-answer[{run_label()}]"


@task(
    name="judge-answer",
    task_run_name=judge_run_name,
    retry_condition_fn=retry_only_transient,
    cache_key_fn=judge_cache_key,
    persist_result=True,
    log_prints=False,
)
async def judge_answer(request: TeacherRequest, label: str | None = None) -> dict[str, Any]:
    """Ask the judge to score one answer about one image and record the score in the run's ledger."""
    return await ask_and_record(request, judge_record, KIND_JUDGE)


def pair_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image, question, both answers in this order, judge model and parameters."""
    request: TeacherRequest = parameters["request"]
    return f"judge-pair-{request.key}"


@task(
    name="judge-pair",
    task_run_name=lambda: f"judge-pair[{run_label()}]",
    retry_condition_fn=retry_only_transient,
    cache_key_fn=pair_cache_key,
    persist_result=True,
    log_prints=False,
)
async def judge_pair(request: TeacherRequest, label: str | None = None) -> dict[str, Any]:
    """Ask the judge which of two answers about one image is better; record the verdict in the ledger."""
    return await ask_and_record(request, pairwise_record, KIND_JUDGE)
