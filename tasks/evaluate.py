"""The evaluation's GPU-tagged task: the student (and the base model) answer the cases through ms-swift.

Like training it runs under ``tags=["gpu"]`` (one per GPU by the tag's concurrency limit) and is
neither retried nor cached: a crash is read, not repeated. The judge's calls are ``tasks/judge.py``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vqa_distill.student.judged.inference import answer_locally
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.student.judged.setup import EvalSetup


def _forward(line: str) -> None:
    """The worker's own lines (how many rows each model answered) and errors go to the task's log."""
    if line.startswith("infer_worker:") or "Error" in line or "Traceback" in line:
        get_run_logger().info(line)


@task(
    name="answer-locally", task_run_name="answer[{params.infer_backend}]", tags=["gpu"], cache_policy=NO_CACHE
)
def answer_cases(setup: EvalSetup, params: EvalParams) -> dict[str, list[str]]:
    """Answer every case with the student and, unless turned off, the base model; returns model -> answers."""
    if setup.trained is None:
        raise ValueError("answer_cases needs a checkpoint")
    return answer_locally(setup.cases, params, Path(setup.out), setup.trained, on_line=_forward)
