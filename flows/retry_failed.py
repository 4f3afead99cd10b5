"""The ``retry-failed`` flow: re-ask only the images that failed in one teacher run, then rebuild its dataset.

The failed requests come from the run folder's ledger (the failures the run, or its current
``teacher-shard`` runs, recorded: a task run's name may lag at Prefect's default, so names are only
for people); the teacher run is repeated with its own parameters, limited to those keys. Answered
images are never asked again, so this costs only the failed requests.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.generate import generate
from flows.handoff import teacher_summary
from vqa_distill.teacher.prefect_runs.failed import LATEST, find_failed, keys_to_retry, teacher_params_of
from vqa_distill.teacher.run.summary import RunSummary


@flow(name="retry-failed", validate_parameters=True)
async def retry_failed(flow_run_id: str = LATEST) -> RunSummary:
    """Re-ask the images that failed in a teacher run and rebuild its dataset.

    Args:
        flow_run_id: The run whose failed images to re-ask: a generate, pipeline or nightly-refresh
            flow run id, or 'latest' for the most recent generate run.
    """
    logger = get_run_logger()
    run = await find_failed(flow_run_id)
    params = teacher_params_of(run).model_copy(update={"batch": False})  # a batch run's failures: online, now
    # A sharded run's failures were recorded by its shard runs; the retry is sharded again (params.shards).
    keys = keys_to_retry(params.out, [run.flow_run_id, *run.shard_run_ids], [image.file for image in run.images])
    logger.info(
        "teacher run %s (%s): %d failed image(s) listed, %d request(s) to re-ask into %s",
        run.flow_run_name, run.flow_run_id, len(run.images), len(keys), params.out,
    )
    summary = await teacher_summary(await generate(params, only_keys=keys, return_state=True))
    if summary.failed:
        return Failed(  # type: ignore[return-value]
            message=f"{summary.failed} of {len(keys)} re-asked request(s) failed again (see failed.jsonl in {params.out})",
            data=summary,
        )
    return summary
