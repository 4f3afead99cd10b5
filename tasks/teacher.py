"""The ``ask-teacher`` task: one run per image x prompt, named after the image, retried on transient errors.

Retries belong to Prefect (so each attempt shows in the UI) and only transient errors are retried:
the retry condition reads the exception from ``state.data``, because in an async task
``state.result()`` returns a coroutine and never raises (which would silently disable retries).
The cache key is the request's content key and results are persisted, so a retried task run or a
flow run retried from the UI returns finished answers without calling the API.

A successful run does not send the engine's closing "Finished in state Completed()" line to the API:
with one run per image it was the only line of most runs, so a 10,000-image flow run's log tab held
10,000 of them above the lines that matter, and each cost CPU on both sides (up to 2 ms each per
image, docs/performance.md). The UI shows the state anyway; failures, crashes and "Retry 1/3 will
start" lines are still sent, and ``--verbose`` still prints every line on the terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.runtime import flow_run, task_run
from prefect.states import State
from prefect.tasks import exponential_backoff

from vqa_distill.errors import TransientTeacherError
from vqa_distill.teacher.answers.guard import answered_since_planned
from vqa_distill.teacher.answers.outcomes import answer_record, failure_record
from vqa_distill.teacher.endpoint.client import TeacherAnswer, ask
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import KIND_ANSWER, TeacherRecord, utc_now
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.resources import resources_of

RETRY_JITTER_FACTOR = 0.5  # delays vary by up to +-50%, so retries of a burst of 429s do not stampede

TASK_RUN_LOGGER = "prefect.task_runs"  # the logger of Prefect's task engine
SUCCESS_LINE = "Finished in state "  # logged at INFO for Completed and Cached, at ERROR otherwise

# Turns an answer into the record to store: (request, answer, attempts=, flow_run_id=, started_at=).
MakeRecord = Callable[..., TeacherRecord]


class QuietSuccess(logging.Filter):
    """Drop the engine's closing line of a task run that succeeded; keep every other line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and isinstance(record.msg, str) and record.msg.startswith(SUCCESS_LINE))


def quiet_successful_runs() -> None:
    """Keep successful task runs' closing lines off the Prefect API (the terminal still shows them with --verbose).

    The filter sits on the API handlers of the task engine's logger, once each, not on the logger:
    ``--verbose`` prints every run's line on the terminal, where it costs nothing on the server.
    """
    from prefect.logging.handlers import APILogHandler

    for handler in logging.getLogger(TASK_RUN_LOGGER).handlers:
        if isinstance(handler, APILogHandler) and not any(isinstance(f, QuietSuccess) for f in handler.filters):
            handler.addFilter(QuietSuccess())


quiet_successful_runs()


def request_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache by content: the same image bytes, prompt, system, model and parameters are one answer."""
    request: TeacherRequest = parameters["request"]
    return f"ask-teacher-{request.key}"


def retry_only_transient(task: Task[Any, Any], run: TaskRun, state: State[Any]) -> bool:
    """Retry 429s, 5xx, timeouts and broken responses; never a 400 or an undecodable image."""
    return isinstance(state.data, TransientTeacherError)


def run_label() -> str:
    """Return what a run is about: its ``label`` (``<rel path> #k`` for a question) or its image's path."""
    label: str | None = task_run.parameters.get("label")
    request: TeacherRequest = task_run.parameters["request"]
    return label or request.rel_path


def task_run_name() -> str:
    """Name each run after its image's path in the folder, so the UI lists ``ask-teacher[line 2/cat_001.jpg]``.

    The full relative path, not the base name: ``a/x.jpg`` and ``b/x.jpg`` are two images. A
    generated question adds its number: ``ask-teacher[line 2/cat_001.jpg #3]``. The name is for
    people: the API may list a run under Prefect's default name (``ask-teacher-ffb``) for a while,
    or for good, so ``failed`` and ``retry-failed`` find failed images in the ledger instead.
    """
    return f"ask-teacher[{run_label()}]"


def with_retries(teacher_task: Task[Any, Any], params: TeacherParams) -> Task[Any, Any]:
    """Return ``teacher_task`` retried per the run's parameters (exponential backoff with jitter)."""
    return teacher_task.with_options(
        retries=params.max_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=params.retry_delay),
        retry_jitter_factor=RETRY_JITTER_FACTOR,
    )


async def ask_and_record(request: TeacherRequest, make_record: MakeRecord, kind: str = KIND_ANSWER) -> dict[str, Any]:
    """Ask one request with the flow run's live objects and store its outcome (a failure too) in the ledger."""
    run_id = flow_run.id
    runtime = resources_of(run_id)
    started_at = utc_now()
    attempt = task_run.run_count or 1
    if (answered := await answered_since_planned(runtime.ledger, request)) is not None:
        return answered.to_json()  # another run paid for it meanwhile: filed as a cache hit, nothing asked
    try:
        image = await runtime.images.get(request)
        answer: TeacherAnswer = await ask(runtime.client, runtime.gate, request, image)
    except Exception as exc:
        failure = failure_record(request, exc, attempts=attempt, flow_run_id=run_id, started_at=started_at)
        failure.kind = kind
        await runtime.ledger.record_async(failure)
        raise
    record = make_record(request, answer, attempts=attempt, flow_run_id=run_id, started_at=started_at)
    await runtime.ledger.record_async(record)  # spooled, not raised, when the ledger stays away: never paid twice
    return record.to_json()


@task(
    name="ask-teacher",
    task_run_name=task_run_name,
    retry_condition_fn=retry_only_transient,
    cache_key_fn=request_cache_key,
    persist_result=True,
    log_prints=False,
)
async def ask_teacher(request: TeacherRequest, label: str | None = None) -> dict[str, Any]:
    """Ask the teacher one question about one image and record the outcome in the run's ledger.

    ``label`` names the run (``<rel path> #k`` for a generated question); it is not part of the cache key.
    """
    return await ask_and_record(request, answer_record)
