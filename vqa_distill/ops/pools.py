"""The work pools and the GPU concurrency limit, as code; applying them twice changes nothing.

- ``cpu-pool``: process workers for the teacher stage, the pipeline, nightly refreshes and retries.
- ``gpu-pool``: one worker per CUDA machine runs the ``train`` deployment. A process pool by default
  (the worker runs the flow in its own checkout and venv); ``docker-job-template.json`` and
  ``k8s-job-template.json`` next to this file make it a Docker or Kubernetes pool that requests NVIDIA
  GPUs for each run.
- the ``gpu`` tag concurrency limit: at most ``gpu_slots`` GPU-tagged task runs (training, merging,
  evaluation) at once across all machines: one per GPU.

Pools are created through the API, not the UI: the UI's pool-type picker fetches from the internet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vqa_distill.errors import ConfigError
from vqa_distill.paths import DEPLOYMENTS_DIR

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

CPU_POOL = "cpu-pool"
GPU_POOL = "gpu-pool"
GPU_TAG = "gpu"
DEFAULT_GPU_SLOTS = 1  # one GPU, one training at a time; raise it to the number of GPUs in the pool

PoolType = Literal["process", "docker", "kubernetes"]
TEMPLATE_FILES: dict[str, str] = {"docker": "docker-job-template.json", "kubernetes": "k8s-job-template.json"}


@dataclass(frozen=True)
class PoolSpec:
    """A work pool as this project wants it."""

    name: str
    type: str
    description: str
    base_job_template: dict[str, Any]


def base_job_template(pool_type: PoolType) -> dict[str, Any]:
    """Return the base job template of a pool type: Prefect's own for process, ours (GPUs) for the others."""
    if pool_type == "process":
        from prefect.workers.process import ProcessWorker

        return ProcessWorker.get_default_base_job_template()
    return dict(json.loads((DEPLOYMENTS_DIR / TEMPLATE_FILES[pool_type]).read_text(encoding="utf-8")))


def pool_specs(gpu_pool_type: PoolType = "process") -> list[PoolSpec]:
    """Return the two pools: cpu-pool (process) and gpu-pool (process, Docker or Kubernetes)."""
    return [
        PoolSpec(
            CPU_POOL,
            "process",
            "Teacher stage, pipeline, nightly refresh and retries: runs flows in the worker's checkout.",
            base_job_template("process"),
        ),
        PoolSpec(
            GPU_POOL,
            gpu_pool_type,
            "CUDA machines: the train deployment. One worker per GPU machine (`prefect worker start --pool "
            "gpu-pool --limit 1`); the `gpu` tag limit caps GPU task runs across machines.",
            base_job_template(gpu_pool_type),
        ),
    ]


async def apply_pool(client: PrefectClient, spec: PoolSpec) -> str:
    """Create the pool, or update its description and job template; returns 'created' or 'updated'.

    A pool's type cannot change in place, and an update leaves a paused pool paused.
    """
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    try:
        await client.create_work_pool(
            WorkPoolCreate(
                name=spec.name, type=spec.type, description=spec.description, base_job_template=spec.base_job_template
            )
        )
        return "created"
    except ObjectAlreadyExists:
        pass
    existing = await client.read_work_pool(spec.name)
    if existing.type != spec.type:
        raise ConfigError(
            f"work pool {spec.name!r} exists with type {existing.type!r}, not {spec.type!r}: "
            f"delete it first (prefect work-pool delete {spec.name}) to change its type"
        )
    await client.update_work_pool(
        spec.name, WorkPoolUpdate(description=spec.description, base_job_template=spec.base_job_template)
    )
    return "updated"


async def apply_gpu_limit(client: PrefectClient, slots: int = DEFAULT_GPU_SLOTS) -> None:
    """Set the ``gpu`` tag concurrency limit to ``slots`` (the API upserts by tag)."""
    if slots < 1:
        raise ConfigError(f"--gpu-slots must be at least 1, not {slots}")
    await client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)


async def current_gpu_pool_type(client: PrefectClient) -> PoolType:
    """Return the type of the existing gpu-pool (so a plain re-apply keeps a Docker pool Docker); process if none."""
    from prefect.exceptions import ObjectNotFound

    try:
        pool = await client.read_work_pool(GPU_POOL)
    except ObjectNotFound:
        return "process"
    if pool.type not in ("process", "docker", "kubernetes"):
        raise ConfigError(f"work pool {GPU_POOL!r} has type {pool.type!r}, which this project has no template for")
    return pool.type  # type: ignore[return-value]


async def apply_all(
    client: PrefectClient, *, gpu_pool_type: PoolType | None = None, gpu_slots: int = DEFAULT_GPU_SLOTS
) -> list[str]:
    """Apply both pools and the gpu limit; returns one line per change, for the CLI to print.

    ``gpu_pool_type`` None keeps the existing gpu-pool's type (process for a new one).
    """
    gpu_pool_type = gpu_pool_type or await current_gpu_pool_type(client)
    lines = [f"work pool {spec.name} ({spec.type}): {await apply_pool(client, spec)}" for spec in pool_specs(gpu_pool_type)]
    await apply_gpu_limit(client, gpu_slots)
    lines.append(f"tag concurrency limit {GPU_TAG!r}: {gpu_slots}")
    return lines
