"""Apply everything the server needs, in order: work pools, the gpu limit, then prefect.yaml's deployments.

The deployments are applied by ``prefect deploy --all`` in a child process rather than rebuilt here
with ``RunnerDeployment``: prefect.yaml stays the one description that operators read, edit and can
apply by hand or from CI with the same command, and nothing here re-implements its parsing
(schedules, concurrency options, job variables, pull steps). ``prefect deploy`` upserts by name, so
applying twice changes nothing.

There is no git remote: the pull step changes into ``$VQA_DISTILL_ROOT`` of the worker that runs the
flow, so each machine runs its own checkout (see prefect.yaml).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vqa_distill.errors import EXIT_FATAL, EXIT_OK, FatalRunError
from vqa_distill.ops.pools import DEFAULT_GPU_SLOTS, PoolType, apply_all
from vqa_distill.paths import PREFECT_FILE

ROOT_ENV = "VQA_DISTILL_ROOT"  # prefect.yaml's pull step changes into it on the worker
DEPLOY_TIMEOUT_S = 300.0
OUTPUT_TAIL_CHARS = 4000


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
    """Create or update the work pools and the gpu limit on the configured Prefect API."""
    import httpx
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        try:
            return await apply_all(client, gpu_pool_type=gpu_pool_type, gpu_slots=gpu_slots)
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
