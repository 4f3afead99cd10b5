"""Per-event-loop resources of a teacher run: the client, the rate gate, the ledger, the image cache.

Task arguments must stay plain data (Prefect hashes and displays them) and the secret must never be
one, so the flow installs these objects here and each task run looks them up by run folder. They are
bound to the loop that made them: an AsyncOpenAI client and an aiolimiter bucket must not cross loops.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI

from vqa_distill.teacher.gate import RateGate
from vqa_distill.teacher.imaging import PreparedImage, prepare_image
from vqa_distill.teacher.ledger import Ledger
from vqa_distill.teacher.request import TeacherRequest

# Prepared images kept beyond the requests in flight, so every prompt of one image reuses one decode.
IMAGE_CACHE_SLACK = 8


class PreparedImages:
    """Decode each image once for all its prompts, in worker threads, holding only the images in use."""

    def __init__(self, capacity: int, workers: int | None = None):
        self._capacity = capacity
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="prepare")
        self._futures: OrderedDict[tuple[str, int], asyncio.Future[PreparedImage]] = OrderedDict()

    async def get(self, request: TeacherRequest) -> PreparedImage:
        """Return the request's image prepared within its pixel budget (raises ImageError)."""
        cache_key = (request.sha256, int(request.params.get("max_pixels", 0)))
        future = self._futures.get(cache_key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = asyncio.ensure_future(
                loop.run_in_executor(self._pool, prepare_image, request.image_path, cache_key[1])
            )
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
class TeacherRuntime:
    """What a task run of one flow run needs besides its request."""

    client: AsyncOpenAI
    gate: RateGate
    ledger: Ledger
    images: PreparedImages
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    async def aclose(self) -> None:
        """Release the connection pool, the threads and the ledger connection."""
        await self.client.close()
        self.images.close()
        self.ledger.close()


_RUNTIMES: dict[tuple[int, str], TeacherRuntime] = {}


def _slot(out_dir: str | Path) -> tuple[int, str]:
    return id(asyncio.get_running_loop()), str(out_dir)  # the flow and its tasks pass the same string


def install_runtime(out_dir: str | Path, runtime: TeacherRuntime) -> None:
    """Make ``runtime`` the one task runs of this loop use for ``out_dir``."""
    _RUNTIMES[_slot(out_dir)] = runtime


def uninstall_runtime(out_dir: str | Path) -> TeacherRuntime | None:
    """Forget the runtime of ``out_dir`` on this loop and return it (for closing)."""
    return _RUNTIMES.pop(_slot(out_dir), None)


def current_runtime(out_dir: str | Path) -> TeacherRuntime:
    """Return the runtime installed by the flow for ``out_dir`` on this loop."""
    try:
        return _RUNTIMES[_slot(out_dir)]
    except KeyError:
        raise RuntimeError(
            f"no teacher runtime for {out_dir}: ask-teacher runs inside the generate flow, which installs it"
        ) from None
