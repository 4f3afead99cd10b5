"""The ``ask-questions`` task: one run per image x prompt, the teacher's list of N questions about the image.

Retried on transient errors only, cached by the request's content key with persisted results, like
``ask-teacher``; an invalid or empty list is an outcome recorded as unusable with its reason, not an
error. ``question_stages`` wires it with ``ask-teacher`` and ``judge-answer`` for the fan-out.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.runtime import task_run

from tasks.judge import judge_answer
from tasks.teacher import ask_and_record, ask_teacher, retry_only_transient, with_retries
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_QUESTIONS
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.fanout import Stages
from vqa_distill.teacher.qa.questions import question_set_record


def questions_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image bytes, prompt, style, N, model and parameters are one question list."""
    request: TeacherRequest = parameters["request"]
    return f"ask-questions-{request.key}"


def questions_run_name() -> str:
    """Name each run after its image's path in the folder: ``ask-questions[line 2/cat_001.jpg]``."""
    request: TeacherRequest = task_run.parameters["request"]
    return f"ask-questions[{request.rel_path}]"


@task(
    name="ask-questions",
    task_run_name=questions_run_name,
    retry_condition_fn=retry_only_transient,
    cache_key_fn=questions_cache_key,
    persist_result=True,
    log_prints=False,
)
async def ask_questions(request: TeacherRequest, count: int) -> dict[str, Any]:
    """Ask the teacher for ``count`` questions about one image and record the list in the run's ledger."""
    return await ask_and_record(request, partial(question_set_record, count=count), KIND_QUESTIONS)


def question_stages(params: TeacherParams) -> Stages:
    """Return the three tasks of questions mode, retried per the run's parameters (no judge unless set)."""
    questions, answer, judge = (with_retries(t, params) for t in (ask_questions, ask_teacher, judge_answer))
    count = params.questions or 1
    return Stages(
        ask_questions=lambda request: questions(request, count),
        ask=lambda request, label: answer(request, label),
        judge=(lambda request, label: judge(request, label)) if params.judge_model else None,
    )
