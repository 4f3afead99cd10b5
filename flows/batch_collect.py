"""The ``collect-batches`` flow, on a 15-minute schedule: record finished batches, rebuild, publish, maybe train.

A short run: it records the finished batches in each run folder's ledger, rebuilds its dataset and
artifacts, publishes a dated version when it changed, and trains on it when asked. Its progress and
cost artifacts count run folders collected, with their lines and spend at the batch price.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.collected import CollectedRun, publish_collected
from tasks.report import COLLECT_LIVE, publish_batch_table, publish_run_artifacts
from vqa_distill.errors import ConfigError
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.student.handoff import DEFAULT_HAND_OFF, HandOff, StudentOptions
from vqa_distill.teacher.batch.clients import BatchClients
from vqa_distill.teacher.batch.collect import collect_run, has_batches
from vqa_distill.teacher.batch.listing import discover_run_folders, stored_rows
from vqa_distill.teacher.run.live import count_summary, live_progress


@flow(name="collect-batches", validate_parameters=True)
@fatal_errors_fail_the_run
async def collect_batches(
    outs: list[str] | None = None,
    base_url: str | None = None,
    api_key_block: str | None = None,
    publish_versions: bool = False,
    train_when_changed: bool = False,
    student: StudentOptions | None = None,
    hand_off: HandOff = DEFAULT_HAND_OFF,
) -> list[CollectedRun]:
    """Record every finished batch of the run folders in their ledgers and rebuild their datasets.

    Args:
        outs: Run folders to collect; empty: every folder named by the endpoint's batches that is on this worker.
        base_url: The endpoint to list batches at when outs is empty (each batch remembers its own endpoint).
        api_key_block: Prefect Secret block with the API key for that listing (else OPENAI_API_KEY).
        publish_versions: Publish a changed dataset as <out>/versions/<date> (as nightly-refresh does).
        train_when_changed: Fine-tune the student on each new version (needs student and publish_versions).
        student: Training options, needed only with train_when_changed.
        hand_off: Where training runs: on the GPU pool (default) or in this flow run.
    """
    if train_when_changed and (student is None or not publish_versions):
        raise ConfigError("train_when_changed needs the student options and publish_versions")
    runs = []
    async with BatchClients() as clients, live_progress(COLLECT_LIVE) as live:
        folders = outs or await discover_run_folders(await clients.get(base_url, api_key_block))
        with_batches = [folder for folder in folders if has_batches(folder)]
        live.tally.extend(len(with_batches))
        for out in with_batches:
            summary = await collect_run(out, clients.get, flow_run_id=flow_run.id, publish=publish_run_artifacts)
            count_summary(live.tally, summary)
            if summary is not None:
                runs.append(await publish_collected(out, summary, publish_versions, train_when_changed, student, hand_off))
    await publish_batch_table([row for out in folders for row in stored_rows(out)])
    get_run_logger().info("collected %d run folder(s) of %d", len(runs), len(folders))
    failed = sum(run.summary.failed for run in runs)
    if failed:
        message = f"{failed} batch request(s) failed or were not run (see failed.jsonl)"
        return Failed(message=message, data=runs)  # type: ignore[return-value]
    return runs
