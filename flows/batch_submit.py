"""Submit a run's unanswered requests as Batch API batches, and return: nothing waits the 24 h a batch may take.

``generate`` (and so ``nightly-refresh``) submits through here when ``params.batch`` is on;
``submit-batches`` is the same as a flow of its own.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from tasks.report import publish_batch_table, publish_run_artifacts
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.listing import stored_rows
from vqa_distill.teacher.batch.submit import submit_run, submit_summary
from vqa_distill.teacher.endpoint.check import check_endpoint
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.finish import finish_run
from vqa_distill.teacher.run.summary import RunSummary


@fatal_errors_fail_the_run
async def submit_in_run(params: TeacherParams, only_keys: list[str] | None) -> RunSummary:
    """Submit as batches in this flow run; publish the summary, failed images and batch listing."""
    async with BatchClients(params.timeout) as clients:
        client = await clients.get(params.base_url, params.api_key_block)
        if params.preflight:
            await check_endpoint(client, params.model)
        with Ledger(params.out) as ledger:
            keys = set(only_keys) if only_keys is not None else None
            outcome = await submit_run(params, ledger, client, flow_run_id=flow_run.id, only_keys=keys)
            summarize_with = lambda dataset: submit_summary(outcome, params, dataset, flow_run.id)  # noqa: E731
            summary = await finish_run(ledger, params.out, summarize_with, publish_run_artifacts,
                                       plan=outcome.plan, params=params)  # fmt: skip
    await publish_batch_table(stored_rows(params.out))
    batch_ids = [row.batch_id for row in outcome.batches if row.batch_id]
    get_run_logger().info("submitted %d line(s) in batch(es) %s", outcome.lines, ", ".join(batch_ids) or "none")
    if summary.failed:
        message = f"{summary.failed} request(s) could not be submitted (see failed.jsonl)"
        return Failed(message=message, data=summary)  # type: ignore[return-value]
    return summary


@flow(name="submit-batches", validate_parameters=True)
async def submit_batches(params: TeacherParams, only_keys: list[str] | None = None) -> RunSummary:
    """Submit every request not answered and not in flight as Batch API batches, and return at once.

    Args:
        params: The teacher stage (its batch switch is turned on here).
        only_keys: Submit only these request keys; leave empty for every image.
    """
    return await submit_in_run(params.model_copy(update={"batch": True}), only_keys)
