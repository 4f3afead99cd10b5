"""Which failed task run is which failed request: the ledger's failure records tied to the runs people see.

The ledger says which requests failed; the Prefect API shows, for people, the task run that failed
and why. A task run's name may lag at Prefect's default (``ask-teacher-ffb``) for a while, or for
good, so a record is tied to a run by its flow run and stage first, by the image the name gives when
it has one, and by the same reason. A failed task run that left no record (a crash before recording)
is listed too, by the image its name gives, else with an empty file and its task run id.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from vqa_distill.teacher.ledger.records import KIND_ANSWER, KIND_JUDGE, KIND_QUESTIONS, TeacherRecord

if TYPE_CHECKING:
    from prefect.client.schemas.objects import TaskRun

UNKNOWN_FILE = ""  # the file of a failed task run that neither the ledger nor its name ties to an image

# The ledger kind of each teacher-stage task.
KIND_OF_TASK = {"ask-teacher": KIND_ANSWER, "ask-questions": KIND_QUESTIONS, "judge-answer": KIND_JUDGE}
# A teacher-stage task run's name: after its data, ask-teacher[<path>], ask-teacher[<path> #k] (a generated
# question), ask-questions[<path>], judge-answer[<path> #k]; or Prefect's default, ask-teacher-ffb.
_TASK_RUN_NAME = re.compile(
    r"^(?P<task>ask-teacher|ask-questions|judge-answer)(?:\[(?P<file>.*?)(?: #\d+)?\]|-[^\[\]]*)?$"
)
# Prefect prefixes a failed task's message with this; the rest is "ErrorClass: what the API said".
_PREFECT_PREFIX = "Task run encountered an exception "


@dataclass(frozen=True)
class FailedImage:
    """One failed request: the image's path in its folder (empty when unknown), why, how many attempts, its task run."""

    file: str
    reason: str
    attempts: int
    task_run_id: str  # empty when no failed task run is tied to it (a Batch API request, or not recorded yet)
    task_run_name: str = ""  # as the API lists it now: for people, never parsed for the image


def task_of(task_run_name: str) -> str | None:
    """Return the teacher-stage task a run belongs to, from its name or Prefect's default one, else None."""
    match = _TASK_RUN_NAME.match(task_run_name)
    return match.group("task") if match else None


def file_of(task_run_name: str) -> str | None:
    """Return the image's relative path named by a teacher-stage task run (``ask-teacher[<path> #k]``...), else None."""
    match = _TASK_RUN_NAME.match(task_run_name)
    return match.group("file") if match else None


def reason_of(state_message: str | None) -> str:
    """Return the useful part of a failed task run's state message (without Prefect's prefix)."""
    message = (state_message or "failed, no message recorded").strip()
    return message.removeprefix(_PREFECT_PREFIX)


def record_reason(record: TeacherRecord) -> str:
    """Return why a failed record failed, as a task run's state message says it (and its batch, if any)."""
    reason = f"{record.error_class}: {record.error_message}"
    return reason + (f" (batch {record.batch_id})" if record.batch_id else "")


def task_run_reason(task_run: TaskRun) -> str:
    """Return why a failed task run failed, from its state message."""
    return reason_of(task_run.state.message if task_run.state else None)


def stage_of(task_run: TaskRun) -> tuple[str, str] | None:
    """Return (flow run id, ledger kind) of a teacher-stage task run, whatever its name; None for other tasks."""
    task = task_of(task_run.name)
    return (str(task_run.flow_run_id), KIND_OF_TASK[task]) if task else None


def tie(task_runs: Iterable[TaskRun], records: Iterable[TeacherRecord]) -> dict[str, TaskRun]:
    """Return the failed task run of each failed record (by request key) that one can be tied to.

    A task run and a record belong together when they are of the same flow run and stage and the
    run's name gives the record's image. A run still under Prefect's default name is tied to a record
    of its stage left over: one with the same reason first, then any (which of them is then a guess,
    and only the task run shown beside the image depends on it). Each run is tied to one record.
    """
    pools: dict[tuple[str | None, ...], deque[TaskRun]] = defaultdict(deque)
    for run in task_runs:
        if (stage := stage_of(run)) is None:
            continue
        if (file := file_of(run.name)) is not None:
            pools[("name", *stage, file)].append(run)
        else:
            pools[("reason", *stage, task_run_reason(run))].append(run)
            pools[("stage", *stage)].append(run)
    records = list(records)
    pool_keys: tuple[Callable[[TeacherRecord], tuple[str | None, ...]], ...] = (
        lambda record: ("name", record.flow_run_id, record.kind, record.rel_path),
        lambda record: ("reason", record.flow_run_id, record.kind, record_reason(record)),
        lambda record: ("stage", record.flow_run_id, record.kind),
    )
    ties: dict[str, TaskRun] = {}
    taken: set[UUID] = set()
    for pool_key in pool_keys:  # names first: a default-named run never takes a named run's record
        for record in records:
            pool = pools.get(pool_key(record))
            while record.key not in ties and pool:
                run = pool.popleft()
                if run.id not in taken:
                    taken.add(run.id)
                    ties[record.key] = run
    return ties


def identify(task_runs: Iterable[TaskRun], records: Iterable[TeacherRecord]) -> list[FailedImage]:
    """Return the failed requests: each failed record with its task run, then the teacher-stage runs left.

    A failed task run tied to no record failed without recording (a crash): it is listed by the image
    its name gives, else with an empty file and its task run id. Sorted by file, unknown ones last.
    """
    runs = [run for run in task_runs if stage_of(run) is not None]
    records = list(records)
    ties = tie(runs, records)
    images = [
        FailedImage(
            file=record.rel_path,
            reason=record_reason(record),
            attempts=max(record.attempts, 1),
            task_run_id=str(ties[record.key].id) if record.key in ties else "",
            task_run_name=ties[record.key].name if record.key in ties else "",
        )
        for record in records
    ]
    tied = {run.id for run in ties.values()}
    images += [
        FailedImage(
            file=file_of(run.name) or UNKNOWN_FILE,
            reason=task_run_reason(run),
            attempts=max(run.run_count, 1),
            task_run_id=str(run.id),
            task_run_name=run.name,
        )
        for run in runs
        if run.id not in tied
    ]
    return sorted(images, key=lambda image: (image.file == UNKNOWN_FILE, image.file, image.task_run_name))
