"""The live objects of one teacher flow run (client, rate gate, ledger, image cache), shared by its task runs.

Task arguments must stay plain data (Prefect hashes and displays them) and the secret must never be
one, so the flow registers these objects under its flow run id and each task run looks them up by
the same id. They belong to the flow run's event loop: an AsyncOpenAI client and the rate
gate's lock must not cross loops, and a flow run has one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from openai import AsyncOpenAI

from vqa_distill.teacher.endpoint.client import open_client
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.prepare import PreparedImage, prepare_image
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.ratelimit.concurrency import ConcurrencyLimit
from vqa_distill.teacher.ratelimit.gate import RateGate
from vqa_distill.teacher.ratelimit.gates import Gates
from vqa_distill.teacher.ratelimit.global_gate import open_global_gate

# Prepared images kept beyond the requests in flight, so every prompt of one image reuses one decode.
IMAGE_CACHE_SLACK = 8
# Per-minute limits no run reaches: what ``rate_limits=False`` sets (requests and tokens per minute).
NO_RPM = 1_000_000_000
NO_TPM = 1_000_000_000_000


class PreparedImages:
    """Decode each image once for all its prompts, in worker threads, holding only the images in use."""

    def __init__(self, capacity: int, workers: int | None = None):
        self._capacity = capacity
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="prepare")
        self._futures: OrderedDict[tuple[str, PixelBudget], asyncio.Future[PreparedImage]] = OrderedDict()

    async def get(self, request: TeacherRequest) -> PreparedImage:
        """Return the request's image prepared at the size its model keeps, within its budget (raises ImageError)."""
        budget = model_spec(request.model).budget(int(request.params.get("max_pixels", 0)))
        cache_key = (request.sha256, budget)  # a judge of another family gets its own size of the image
        future = self._futures.get(cache_key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = asyncio.ensure_future(loop.run_in_executor(self._pool, prepare_image, request.image_path, budget))
            self._futures[cache_key] = future
            while len(self._futures) > self._capacity:
                self._futures.popitem(last=False)
        else:
            self._futures.move_to_end(cache_key)
        return await asyncio.shield(future)

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class TeacherResources:
    """What every ask-teacher task run of one flow run shares: live objects, never task arguments.

    ``gate`` holds a gate per model that paces on its own (``ratelimit/gates.py``): ``ask`` picks the
    one of each request's model, so the judge's requests pass the judge's gate.
    """

    client: AsyncOpenAI
    gate: Gates
    ledger: Ledger
    images: PreparedImages

    async def aclose(self) -> None:
        """Release the connection pools and the image threads (the ledger belongs to the flow)."""
        await self.client.close()
        for gate in self.gate.all():
            if gate.outer is not None:
                await gate.outer.aclose()
        self.images.close()


# The contract: the generate flow registers its resources under its own flow run id before it starts
# any task run and removes them when the last one is done; an ask-teacher task run looks them up by
# the id of the flow run it belongs to. Task arguments stay plain data (Prefect hashes them for the
# cache key and shows them in the UI); the client, the rate gate and the ledger connection live here.
_BY_FLOW_RUN: dict[str, TeacherResources] = {}
# What each flow run's teacher concurrency limit came to, kept past its resources for the run's summary.
_CONCURRENCY_BY_FLOW_RUN: dict[str, str] = {}


def concurrency_used(flow_run_id: str) -> str | None:
    """Return how the teacher's requests in flight were limited in ``flow_run_id`` (None: it asked nothing)."""
    return _CONCURRENCY_BY_FLOW_RUN.get(flow_run_id)


@contextlib.asynccontextmanager
async def registered(flow_run_id: str, resources: TeacherResources) -> AsyncIterator[TeacherResources]:
    """Register ``resources`` for the task runs of ``flow_run_id``; unregister and close them on exit."""
    if flow_run_id in _BY_FLOW_RUN:
        raise RuntimeError(f"flow run {flow_run_id} already has teacher resources registered")
    _BY_FLOW_RUN[flow_run_id] = resources
    try:
        yield resources
    finally:
        del _BY_FLOW_RUN[flow_run_id]
        _CONCURRENCY_BY_FLOW_RUN[flow_run_id] = resources.gate.teacher.concurrency.describe()
        await resources.aclose()


def resources_of(flow_run_id: str) -> TeacherResources:
    """Return the resources the generate flow run ``flow_run_id`` registered for its task runs."""
    try:
        return _BY_FLOW_RUN[flow_run_id]
    except KeyError:
        raise RuntimeError(
            f"no teacher resources for flow run {flow_run_id}: ask-teacher runs inside the generate flow"
        ) from None


async def open_resources(params: TeacherParams, ledger: Ledger) -> TeacherResources:
    """Build a run's live objects from its parameters: the client (key from env or block), gates, image cache.

    With ``VQA_DISTILL_REDIS_URL`` set, each gate also follows the limit every worker shares for its
    model (``global_gate.py``); an unreachable Redis stops the run here, before any request. A judge of
    another model gets its own gate, at ``judge_rpm``/``judge_tpm`` (the teacher's figures when unset).
    """
    opened: list[RateGate] = []
    try:
        teacher = await _open_gate(params, params.model, params.rpm, params.tpm)
        opened.append(teacher)
        others: dict[str, RateGate] = {}
        if params.judge_model and params.judge_model != params.model:
            others[params.judge_model] = await _open_gate(
                params, params.judge_model, params.judge_rpm or params.rpm, params.judge_tpm or params.tpm
            )
            opened.append(others[params.judge_model])
        client = await open_client(base_url=params.base_url, api_key_block=params.api_key_block, timeout=params.timeout)
    except BaseException:
        for gate in opened:
            if gate.outer is not None:
                await gate.outer.aclose()
        raise
    return TeacherResources(
        client=client,
        gate=Gates(teacher, others),
        ledger=ledger,
        images=PreparedImages(capacity=params.concurrency + IMAGE_CACHE_SLACK),
    )


async def _open_gate(params: TeacherParams, model: str, rpm: int, tpm: int) -> RateGate:
    """Return ``model``'s gate at ``rpm``/``tpm``, under the limit every worker shares when there is one.

    With ``rate_limits`` off the per-minute limits are set out of reach: only the concurrency limit paces.
    """
    if not params.rate_limits:
        rpm, tpm = NO_RPM, NO_TPM
    shared = await open_global_gate(base_url=params.base_url, model=model, rpm=rpm, tpm=tpm)
    in_flight = ConcurrencyLimit(params.concurrency, adaptive=params.concurrency_auto)
    return RateGate(rpm, tpm, max_retry_after=params.max_retry_after, outer=shared, concurrency=in_flight)
