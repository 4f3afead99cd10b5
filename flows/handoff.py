"""Hand a training run over: a subflow run of ``train`` here, or a run of the train deployment on the GPU pool.

Shared by the pipeline and the nightly refresh. On the GPU pool it is ``run_deployment`` (a linked
subflow run a ``gpu-pool`` worker picks up), waited for by polling, so no GPU is held by this run.
"""

from __future__ import annotations

import asyncio

from prefect import get_run_logger
from prefect.deployments import arun_deployment

from flows.train import train
from vqa_distill.errors import FatalRunError
from vqa_distill.flow_state import final_result
from vqa_distill.student.handoff import HandOff, TrainOutcome
from vqa_distill.student.params import TrainParams
from vqa_distill.teacher.run.summary import RunSummary

TRAIN_POLL_S = 2.0  # how often the waiting flow looks at the training run it handed off


async def teacher_summary(state: object) -> RunSummary:
    """Return the teacher run's summary, Failed or not; re-raise the error that stopped it altogether."""
    result = await final_result(state)
    if isinstance(result, BaseException):
        raise result
    return RunSummary.model_validate(result)


async def train_student(params: TrainParams, hand_off: HandOff) -> TrainOutcome:
    """Train in this flow run, or hand the run to the GPU pool's deployment and wait for it."""
    if hand_off.in_process:
        # A sync flow: run it off the event loop; it still shows as a subflow run of this one.
        checkpoint = await asyncio.to_thread(train, params)
        return TrainOutcome(checkpoint=str(checkpoint))
    logger = get_run_logger()
    logger.info("handing training to deployment %s (waits for a worker on its pool)", hand_off.deployment)
    run = await arun_deployment(
        hand_off.deployment, parameters={"params": params.model_dump(mode="json")}, timeout=None,
        poll_interval=TRAIN_POLL_S,
    )  # fmt: skip
    state = run.state
    if state is None or not state.is_completed():
        name, message = (state.name, state.message) if state else ("unknown", None)
        raise FatalRunError(f"training run {run.name} ({run.id}) ended {name}: {message or 'no message'}")
    result = await final_result(state)
    if not isinstance(result, str):  # results not persisted where this worker can read them
        logger.warning("training run %s completed; its checkpoint path is in its logs and artifacts", run.name)
    return TrainOutcome(checkpoint=result if isinstance(result, str) else None, train_flow_run_id=str(run.id))
