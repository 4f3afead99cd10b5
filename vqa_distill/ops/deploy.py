"""Apply everything the server needs, in order: work pools, the gpu limit, the zombie automation, the deployments.

The deployments are applied by ``prefect deploy --all`` in a child process rather than rebuilt here
with ``RunnerDeployment``: prefect.yaml stays the one description that operators read, edit and can
apply by hand or from CI with the same command, and nothing here re-implements its parsing
(schedules, concurrency options, job variables, pull steps). ``prefect deploy`` upserts by name, so
applying twice changes nothing.

A worker machine that dies (power, OOM killer, a SIGKILL of the worker) reports nothing: its flow
runs would stay Running for ever, and a sharded run's parent would wait for them. Flow runs emit
``prefect.flow-run.heartbeat`` events every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds; the
automation applied here (Prefect's documented "detect zombie flows" recipe) marks a Running flow run
Crashed when ``ZOMBIE_MISSED_BEATS`` heartbeats in a row do not arrive, and the parent then starts
that shard again. The frequency is read from this process's settings, which ``stack up`` shares with
its workers: set it on every worker and here alike.

There is no git remote: the pull step changes into ``$VQA_DISTILL_ROOT`` of the worker that runs the
flow, so each machine runs its own checkout (see prefect.yaml).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from vqa_distill.errors import EXIT_FATAL, EXIT_OK, FatalRunError
from vqa_distill.ops.pools import DEFAULT_GPU_SLOTS, PoolType, apply_all
from vqa_distill.paths import PREFECT_FILE

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.events.schemas.automations import AutomationCore

ROOT_ENV = "VQA_DISTILL_ROOT"  # prefect.yaml's pull step changes into it on the worker
DEPLOY_TIMEOUT_S = 300.0
OUTPUT_TAIL_CHARS = 4000
ZOMBIE_AUTOMATION = "vqa-distill: crash silent flow runs"
DEFAULT_HEARTBEAT_S = 30  # Prefect's minimum, and what `stack up` gives every worker
ZOMBIE_MISSED_BEATS = 3  # one late heartbeat (a busy machine, a server restart) is not a dead machine
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
# Any of these after a heartbeat shows the run alive or finished (Prefect's recipe).
ALIVE_EVENTS = (HEARTBEAT_EVENT, *(f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed")))


def zombie_after_s(heartbeat_s: float) -> float:
    """Return how long a Running flow run may stay silent before it is marked Crashed."""
    return ZOMBIE_MISSED_BEATS * heartbeat_s


def zombie_automation(heartbeat_s: float) -> AutomationCore:
    """Return the automation that marks a flow run Crashed when its heartbeats stop."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    within = zombie_after_s(heartbeat_s)
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"A Running flow run without a heartbeat for {within:.0f} s ({ZOMBIE_MISSED_BEATS} beats of "
        f"{heartbeat_s:.0f} s) lost its machine: mark it Crashed, so a sharded run starts that shard again.",
        trigger=EventTrigger(
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            after={HEARTBEAT_EVENT},
            expect=set(ALIVE_EVENTS),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message=f"no heartbeat for {within:.0f} s: the worker or its machine is gone",
                force=False,
            )
        ],
    )


async def apply_zombie_automation(client: PrefectClient, heartbeat_s: float | None) -> str:
    """Create or update the zombie automation by name (one of it, whatever ran before); returns what was done.

    Workers send heartbeats, not the shell that deploys: a deploy from a shell without
    ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` keeps the automation as it is (or creates it for the
    default period), because deleting it would leave a dead worker's shard Running for good. A run
    that never sends a heartbeat is never marked: the trigger starts at its first heartbeat.
    """
    existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
    for extra in existing[1:]:  # two deploys racing may have created twins: keep one
        await client.delete_automation(extra.id)
    if heartbeat_s is None and existing:
        within = getattr(existing[0].trigger, "within", None)
        kept = f" ({within.total_seconds():.0f} s)" if within else ""
        return f"zombie automation: kept as it is{kept}; this shell sets no PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
    heartbeat_s = heartbeat_s if heartbeat_s is not None else DEFAULT_HEARTBEAT_S
    automation = zombie_automation(heartbeat_s)
    if existing:
        await client.update_automation(existing[0].id, automation)
    else:
        await client.create_automation(automation)
    return f"zombie automation: flow runs silent for {zombie_after_s(heartbeat_s):.0f} s are marked Crashed"


def heartbeat_frequency() -> int | None:
    """Return the flow-run heartbeat period (seconds) of this process's Prefect settings; None when off."""
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency


def deploy_argv(prefect_file: Path = PREFECT_FILE, names: Sequence[str] = ()) -> list[str]:
    """Return the ``prefect deploy`` command line: all deployments, or only those named."""
    argv = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(prefect_file)]
    if not names:
        return [*argv, "--all"]
    for name in names:
        argv += ["--name", name]
    return argv


def deploy_deployments(prefect_file: Path = PREFECT_FILE, names: Sequence[str] = ()) -> str:
    """Run ``prefect deploy`` from the repository root; returns its output, raises FatalRunError on failure."""
    # Unset, so that the pull step keeps "{{ $VQA_DISTILL_ROOT }}" and each worker resolves it to its own
    # checkout when a run starts (prefect deploy would otherwise bake in this machine's path).
    env = {k: v for k, v in os.environ.items() if k != ROOT_ENV}
    try:
        done = subprocess.run(
            deploy_argv(prefect_file, names),
            cwd=prefect_file.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise FatalRunError(f"prefect deploy did not finish within {DEPLOY_TIMEOUT_S:.0f} s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise FatalRunError(f"prefect deploy failed (exit {done.returncode}):\n{output[-OUTPUT_TAIL_CHARS:]}")
    return output


async def apply_infrastructure(gpu_pool_type: PoolType | None = None, gpu_slots: int = DEFAULT_GPU_SLOTS) -> list[str]:
    """Create or update the work pools, the gpu limit and the zombie automation on the configured Prefect API."""
    import httpx
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        try:
            lines = await apply_all(client, gpu_pool_type=gpu_pool_type, gpu_slots=gpu_slots)
            lines.append(await apply_zombie_automation(client, heartbeat_frequency()))
            return lines
        except httpx.TransportError as exc:
            raise FatalRunError(f"cannot reach the Prefect API at {client.api_url}: {exc}") from exc


def apply(
    *,
    gpu_pool_type: PoolType | None = None,
    gpu_slots: int = DEFAULT_GPU_SLOTS,
    names: Sequence[str] = (),
    prefect_file: Path = PREFECT_FILE,
) -> list[str]:
    """Apply pools, the gpu limit and the deployments; returns what was done, one line each.

    ``gpu_pool_type`` None keeps the existing gpu-pool's type (process for a new one).
    """
    lines = asyncio.run(apply_infrastructure(gpu_pool_type, gpu_slots))
    deploy_deployments(prefect_file, names)
    lines.append(f"deployments from {prefect_file.name}: " + (", ".join(names) if names else "all") + " applied")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vqa_distill.ops.deploy``: the same as ``vqa-distill deploy``, for CI and the stack."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vqa_distill.ops.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-slots", type=int, default=DEFAULT_GPU_SLOTS)
    parser.add_argument("--gpu-pool-type", choices=["process", "docker", "kubernetes"], default=None)
    parser.add_argument("--name", action="append", default=[], help="deploy only this deployment (repeatable)")
    args = parser.parse_args(argv)
    try:
        lines = apply(gpu_pool_type=args.gpu_pool_type, gpu_slots=args.gpu_slots, names=args.name)
    except FatalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
