"""Benchmark the client against each family of teacher the offline teacher plays, one table per family.

Families: a hosted API with OpenAI's rate-limit headers and 429s (gpt-4o-mini), a relay with no headers
that bills an alias no table knows by its own rule (``my-teacher`` billed as qwen-vl-max, its own 429s),
and a self-hosted server with K slots and a line of Q, 503 beyond, no headers (Qwen2.5-VL under vLLM).
Each family runs twice in the same invocation, side by side: ``--concurrency auto`` (the default) and
the baseline, a fixed 32 in flight as before ``auto`` existed. The client is the library itself
(``RateGate`` + ``ConcurrencyLimit`` + ``ask`` on the real ``openai`` client, an asyncio loop, no
Prefect) sending camera-like 12 MP photos (``photos.py``), prepared once per model's size.

Columns: images/min answered and the ideal (hosted and relay: the RPM, measured over the second half of
the row, once the endpoint's first full minute of allowance is spent; self-hosted: K slots each serving
one answer per service time), their ratio, the share of requests answered 429 and 503, and the token
estimate the gate adopted for the last request against what the endpoint counted (its true rule).
A request that fails is asked again after ``RETRY_DELAY_S``, as the flow's retry policy would.

Run: .venv/bin/python bench/teachers.py [--duration 20] [--photos 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.photos import photo_paths  # noqa: E402
from vqa_distill.errors import TeacherError  # noqa: E402
from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server  # noqa: E402
from vqa_distill.offline_teacher.server.config import SELF_HOSTED_MODELS  # noqa: E402
from vqa_distill.teacher.endpoint.body import estimate_tokens  # noqa: E402
from vqa_distill.teacher.endpoint.client import ask, make_client  # noqa: E402
from vqa_distill.teacher.endpoint.models import model_spec  # noqa: E402
from vqa_distill.teacher.endpoint.request import TeacherRequest  # noqa: E402
from vqa_distill.teacher.images.prepare import PreparedImage, prepare_image  # noqa: E402
from vqa_distill.teacher.params import DEFAULT_CONCURRENCY, DEFAULT_MAX_PIXELS  # noqa: E402
from vqa_distill.teacher.ratelimit.concurrency import ConcurrencyLimit  # noqa: E402
from vqa_distill.teacher.ratelimit.gate import RateGate  # noqa: E402

API_KEY = "sk-bench-teachers-not-a-real-key-00000000"
PROMPT = "Describe the defects."
MAX_TOKENS = 300  # the answer cap each request asks for (counted by TPM limits)
LATENCY_S = 1.0  # the hosted and relay endpoints' answer time
RATED_RPM = 240  # hosted and relay: requests per minute, low enough that the rate limit, not latency, binds
RATED_TPM = 100_000_000  # out of the way: the requests per minute bind
K, Q = 8, 8  # self-hosted: requests in service at once, and waiting
SERVICE_S = 1.0  # self-hosted: one answer's service time alone ...
PER_ACTIVE_S = 0.02  # ... and its slowdown per request in service beside it (batching)
RETRY_DELAY_S = 1.0  # a failed request is asked again after this, as the flow's retry policy would
NO_RPM, NO_TPM = 1_000_000_000, 1_000_000_000_000  # self-hosted: no per-minute limits (--no-rate-limits)
ALIAS = "my-teacher"


@dataclass(frozen=True)
class Family:
    """One kind of teacher: how to start it, which model to ask, and its ideal images per minute."""

    name: str
    model: str
    server: dict[str, Any]
    rpm: int
    tpm: int
    ideal_per_min: float
    steady_from: float  # share of the row after which images/min is measured


FAMILIES = [
    Family(
        "hosted (OpenAI headers, 429)", "gpt-4o-mini", {"rpm": RATED_RPM, "tpm": RATED_TPM, "latency_s": LATENCY_S},
        RATED_RPM, RATED_TPM, RATED_RPM, 0.5,
    ),
    Family(
        "relay (no headers, 429, unknown alias)", ALIAS,
        {"mode": "relay", "rpm": RATED_RPM, "bill_as": {ALIAS: "qwen-vl-max"}, "latency_s": LATENCY_S},
        RATED_RPM, RATED_TPM, RATED_RPM, 0.5,
    ),
    Family(
        "self-hosted (K slots, 503)", SELF_HOSTED_MODELS[0],
        {"mode": "self-hosted", "concurrency": K, "queue_size": Q, "latency_s": SERVICE_S,
         "latency_per_active_s": PER_ACTIVE_S},
        NO_RPM, NO_TPM, K / (SERVICE_S + K * PER_ACTIVE_S) * 60, 0.0,
    ),
]  # fmt: skip


@dataclass
class Row:
    """What one row measured."""

    label: str
    per_min: float
    ideal: float
    refused: float  # share of requests answered 429
    overloaded: float  # share answered 503
    estimate: int  # the gate's estimate for the last request, in tokens (prompt + answer cap)
    counted: int  # what the endpoint counted for it
    concurrency: str


async def drive(handle: TeacherServerHandle, family: Family, photos: list[PreparedImage], auto: bool,
                duration_s: float) -> tuple[list[float], int, str]:  # fmt: skip
    """Ask until ``duration_s`` is over; return the answer times, the last estimate, the limit's summary."""
    in_flight = ConcurrencyLimit(DEFAULT_CONCURRENCY, adaptive=auto)
    gate = RateGate(family.rpm, family.tpm, concurrency=in_flight)
    client = make_client(base_url=handle.base_url, api_key=API_KEY, timeout=60.0)
    spec = model_spec(family.model)
    answered: list[float] = []
    started = time.monotonic()
    deadline = started + duration_s
    last_estimate = 0
    counter = 0

    async def worker() -> None:
        nonlocal counter, last_estimate
        while time.monotonic() < deadline:
            counter += 1
            image = photos[counter % len(photos)]
            request = TeacherRequest(image_path=f"/bench/{counter}.jpg", rel_path=f"{counter}.jpg", sha256=f"{counter:064x}",
                                     prompt=PROMPT, system=None, model=family.model,
                                     params={"max_tokens": MAX_TOKENS})  # fmt: skip
            calibration = gate.calibration(family.model, trusted=spec.known)
            while time.monotonic() < deadline:
                try:
                    await ask(client, gate, request, image)
                except TeacherError:
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                answered.append(time.monotonic() - started)
                last_estimate = estimate_tokens(request, image, spec, calibration)
                break

    await asyncio.gather(*(worker() for _ in range(DEFAULT_CONCURRENCY)))
    await client.close()
    return answered, last_estimate, in_flight.describe()


def measure(family: Family, photos: list[PreparedImage], auto: bool, duration_s: float) -> Row:
    """Run one row against a fresh server of ``family``."""
    with running_teacher_server(api_key=API_KEY, **family.server) as handle:
        answered, estimate, concurrency = asyncio.run(drive(handle, family, photos, auto, duration_s))
        records = [r for r in handle.stats()["requests"] if r.get("fingerprints")]
    start = family.steady_from * duration_s
    steady = [t for t in answered if start <= t <= duration_s]  # not the backlog answered after the row
    served = [r for r in records if not r.get("rate_limited") and not r.get("overloaded")]
    return Row(
        label="auto" if auto else f"fixed {DEFAULT_CONCURRENCY} (baseline)",
        per_min=len(steady) / (duration_s - start) * 60,
        ideal=family.ideal_per_min,
        refused=sum(1 for r in records if r.get("rate_limited")) / max(1, len(records)),
        overloaded=sum(1 for r in records if r.get("overloaded")) / max(1, len(records)),
        estimate=estimate,
        counted=served[-1]["counted_tokens"] if served else 0,
        concurrency=concurrency,
    )


def print_table(family: Family, rows: list[Row]) -> None:
    """Print one family's rows, auto beside its baseline."""
    print(f"\n{family.name}: {family.model}")
    print(f"{'concurrency':<22} {'images/min':>10} {'ideal':>7} {'ratio':>6} {'429 %':>6} {'503 %':>6} "
          f"{'estimate/true':>15}  limit")  # fmt: skip
    for row in rows:
        ratio = row.estimate / row.counted if row.counted else float("nan")
        print(f"{row.label:<22} {row.per_min:>10.1f} {row.ideal:>7.1f} {row.per_min / row.ideal:>6.2f} "
              f"{100 * row.refused:>6.1f} {100 * row.overloaded:>6.1f} {f'{row.estimate}/{row.counted}':>11} "
              f"{ratio:.2f}  {row.concurrency}")  # fmt: skip


def main() -> None:
    """Run every family, auto and baseline, and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per row (default 20)")
    parser.add_argument("--photos", type=int, default=8, help="distinct 12 MP photos, reused (default 8)")
    args = parser.parse_args()
    paths = photo_paths(args.photos)
    for family in FAMILIES:
        budget = model_spec(family.model).budget(DEFAULT_MAX_PIXELS)
        photos = [prepare_image(path, budget) for path in paths]
        rows = [measure(family, photos, auto, args.duration) for auto in (True, False)]
        print_table(family, rows)


if __name__ == "__main__":
    main()
