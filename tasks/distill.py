"""The distil loop's steps that touch Prefect: ask a group of units, build its rows, let the student doubt.

Asking reuses questions mode's tasks (one ``ask-questions`` run per unit, one ``ask-teacher`` run per
question), so every request of every round shows, retries and is cached like a generate run's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks.questions import question_stages
from vqa_distill.dataset.build import TRAIN_FILE
from vqa_distill.dataset.qa_build import build_qa_dataset
from vqa_distill.loop.doubt import Doubt, read_doubts
from vqa_distill.loop.plan import AskGroup
from vqa_distill.loop.versions import VersionRow, read_version
from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.inference import ANSWERS_FILE, TrainedWith, answer_locally
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.teacher.answers.fanout import FanOutOutcome
from vqa_distill.teacher.images.discovery import ImageRef
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.fanout import ask_in_stages
from vqa_distill.teacher.qa.plan import plan_units
from vqa_distill.teacher.run.resources import open_resources, registered


async def ask_group(group: AskGroup, teacher: TeacherParams, folder: Path, ledger: Ledger) -> FanOutOutcome:
    """Ask one group's units (those with work left) in questions mode, under the teacher's gate."""
    params = group.params(teacher, folder)
    plan = plan_units(group.units, params, ledger)
    get_run_logger().info("%s: %d unit(s), %d to ask", group.name, len(group.units), len(plan.jobs))
    if not plan.jobs:
        return FanOutOutcome()
    resources = await open_resources(params, ledger)
    async with registered(flow_run.id, resources):
        return await ask_in_stages(plan, question_stages(params), params, concurrency=params.concurrency,
                                   flow_run_id=flow_run.id, ledger=ledger)  # fmt: skip


@task(name="build-round-rows", task_run_name="rows[{group.name}]", cache_policy=NO_CACHE)
def build_group_rows(group: AskGroup, teacher: TeacherParams, folder: Path, ledger_dir: Path) -> list[VersionRow]:
    """Gate the group's answers into rows (its own folder), and read them back with their metadata."""
    params = group.params(teacher, folder)
    with Ledger(ledger_dir) as ledger:
        build_qa_dataset(ledger, group.units, params)
    return read_version(Path(params.out) / TRAIN_FILE)


@task(name="student-doubts", tags=["gpu"], cache_policy=NO_CACHE)
def student_doubts(
    shas: Sequence[str], images: Mapping[str, ImageRef], prompt: str, checkpoint: str, eval_params: EvalParams, out: Path
) -> list[Doubt]:
    """The student answers each pool image's first prompt; least sure first (mean token log-probability)."""
    trained = TrainedWith.read(Path(checkpoint))
    messages = ([{"role": "system", "content": trained.system}] if trained.system else []) + [
        {"role": "user", "content": f"<image>{prompt}"}
    ]
    cases = [EvalCase(i, images[sha].path, prompt, "", "unknown", prompt, messages, sha) for i, sha in enumerate(shas)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "pool.json").write_text(json.dumps(list(shas)), encoding="utf-8")
    answer_locally(cases, eval_params, out, trained, logprobs=True)
    return read_doubts(out / ANSWERS_FILE, list(shas))
