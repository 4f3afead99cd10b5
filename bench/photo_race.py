"""The photo race: 12 MP camera-like JPEGs through the flow and through a bare asyncio + openai loop.

Both sides send the same photos at the same pixel budget to the same offline teacher, 64 in flight,
no rate limit, so the two cores are saturated and the requests per second each reaches is what its
CPU per image allows. The runs alternate (bare, flow, then flow, bare, ...) because the machine is
shared, and each flow run gets a fresh ledger and result storage (nothing is a cache hit).

bare  - what a careful user writes by hand: ``Image.draft`` + ``thumbnail`` + JPEG q85 in
        ``asyncio.to_thread``, one ``AsyncOpenAI`` client (the project's HTTP stack), a semaphore.
flow  - ``vqa-distill generate``: discovery with content hashes, one ``ask-teacher`` task run per
        photo with a persisted result, the ledger, the dataset build, the artifacts.

CPU per image is split into parts: preparation (thread CPU inside the preparing function, summed by
the child), client orchestration (the rest of the child's CPU), the Prefect server and the offline
teacher (psutil). Each part has the fixed start-up cost taken out: a run over a few photos is
subtracted from the full run.

Children: ``bench/photo_race.py bare STATS FOLDER URL CONCURRENCY MAX_PIXELS`` and
``bench/photo_race.py flow STATS -- <vqa-distill argv>``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import Measured, print_table, run_measured  # noqa: E402

BARE_JPEG_QUALITY = 85  # Pillow's thumbnail + save defaults a hand-written loop would use
CONCURRENCY = 64
PROMPT = "Describe the defects."
API_KEY = "sk-bench-not-a-real-key-000000000000"
PARTS = ("preparation", "client orchestration", "prefect server", "teacher server")


class TimedPrepare:
    """Wrap a preparing function and sum the CPU its calls use in their own threads."""

    def __init__(self, prepare: Callable[..., Any]):
        self._prepare = prepare
        self._lock = threading.Lock()
        self.cpu_s = 0.0
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return self._prepare(*args)
        finally:
            used = time.thread_time() - started
            with self._lock:
                self.cpu_s += used
                self.calls += 1

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps({"prepare_cpu_s": self.cpu_s, "prepared": self.calls}))


def bare_prepare(path: Path, max_pixels: int) -> str:
    """The bare loop's preparation: draft decoding, Pillow's thumbnail, JPEG q85, a data URL."""
    from PIL import Image

    from vqa_distill.teacher.images.prepare import fit_within

    with Image.open(path) as image:
        size = fit_within(*image.size, max_pixels)
        image.draft("RGB", size)
        image.thumbnail(size)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=BARE_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


async def bare_photo_loop(stats: str, folder: Path, base_url: str, concurrency: int, max_pixels: int) -> None:
    """The baseline: prepare in threads, ask with one client, at most ``concurrency`` in flight."""
    from vqa_distill.teacher.endpoint.client import make_client

    prepare = TimedPrepare(bare_prepare)
    client = make_client(base_url=base_url, api_key=API_KEY, timeout=60)
    in_flight = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> None:
        async with in_flight:
            url = await asyncio.to_thread(prepare, path, max_pixels)
            await client.chat.completions.create(
                model="gpt-4o-mini",
                max_tokens=200,
                messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
                    {"type": "text", "text": PROMPT},
                ]}],
            )  # fmt: skip

    await asyncio.gather(*(one(path) for path in sorted(folder.iterdir())))
    await client.close()
    prepare.write(stats)


def flow_child(stats: str, argv: list[str]) -> int:
    """Run ``vqa-distill`` in this process with the flow's image preparation timed."""
    import vqa_distill.teacher.run.resources as resources
    from vqa_distill.cli import main

    prepare = TimedPrepare(resources.prepare_image)
    resources.prepare_image = prepare  # type: ignore[assignment]  # PreparedImages looks it up per call
    code = main(argv)
    prepare.write(stats)
    return code


def linked_folder(photos: list[Path], folder: Path) -> Path:
    """Put ``photos`` in their own folder (hard links, copies across file systems)."""
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        target = folder / photo.name
        if not target.exists():
            try:
                os.link(photo, target)
            except OSError:
                shutil.copyfile(photo, target)
    return folder


@dataclass
class PhotoRun:
    """One child's run with its preparation CPU (from the child) beside what the parent measured."""

    measured: Measured
    prepare_cpu_s: float
    photos: int

    def parts(self) -> dict[str, float]:
        """CPU seconds of this run by part."""
        m = self.measured
        return dict(zip(PARTS, (self.prepare_cpu_s, m.cpu_s - self.prepare_cpu_s, m.prefect_cpu_s, m.teacher_cpu_s), strict=True))


@dataclass
class RaceSetup:
    """What every run of the race shares."""

    server: Any
    env: dict[str, str]
    work: Path
    max_pixels: int
    flow_argv: Callable[[Path, Path, str], list[str]]  # (folder, out, base_url) -> python -m vqa_distill.cli argv


def run_side(side: str, folder: Path, photos: int, setup: RaceSetup, tag: str) -> PhotoRun:
    """Run one side over ``folder`` in a child process; return what it used."""
    stats = setup.work / f"stats-{side}-{tag}.json"
    base_url = setup.server.base_url
    if side == "bare":
        argv = [sys.executable, __file__, "bare", str(stats), str(folder), base_url, str(CONCURRENCY), str(setup.max_pixels)]
        env = setup.env
    else:
        cli = [*setup.flow_argv(folder, setup.work / f"out-{tag}", base_url), "--max-pixels", str(setup.max_pixels)]
        argv = [sys.executable, __file__, "flow", str(stats), "--", *cli[cli.index("vqa_distill.cli") + 1 :]]
        env = {**setup.env, "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(setup.work / f"results-{tag}")}
    measured = run_measured(side, argv, env, setup.server)
    if measured.requests != photos:
        print(f"warning: {side} {tag}: {measured.requests} requests at the server, {photos} expected")
    return PhotoRun(measured, json.loads(stats.read_text())["prepare_cpu_s"], photos)


def per_image(full: PhotoRun, small: PhotoRun) -> dict[str, float]:
    """CPU milliseconds per image by part, the start-up cost taken out (``small`` is a few-photo run)."""
    extra = full.photos - small.photos
    big, few = full.parts(), small.parts()
    return {part: 1000 * (big[part] - few[part]) / extra for part in PARTS}


def race(setup: RaceSetup, photos: list[Path], rounds: int, startup_photos: int) -> dict[str, Any]:
    """Run the race, print its tables, and return the numbers."""
    folder = linked_folder(photos, setup.work / f"photos-{len(photos)}")
    small_folder = linked_folder(photos[:startup_photos], setup.work / f"photos-{startup_photos}")
    for path in sorted(folder.iterdir()):  # the page cache holds them for every run alike
        path.read_bytes()
    setup.server.set_latency(0.05)
    small = {side: run_side(side, small_folder, startup_photos, setup, f"startup-{side}") for side in ("bare", "flow")}
    runs: dict[str, list[PhotoRun]] = {"bare": [], "flow": []}
    for index in range(rounds):
        for side in ("bare", "flow") if index % 2 == 0 else ("flow", "bare"):
            runs[side].append(run_side(side, folder, len(photos), setup, f"{side}-{index}"))
    ratios = [f.measured.server_rate / b.measured.server_rate for b, f in zip(runs["bare"], runs["flow"], strict=True)]
    rows = []
    for index in range(rounds):
        for side in ("bare", "flow"):
            m = runs[side][index].measured
            rows.append([f"{side} {index + 1}", m.requests, f"{m.server_rate:.2f}", f"{m.wall_s:.1f}", f"{m.peak_rss_mib:.0f}"])
        rows.append([f"flow/bare {index + 1}", "", f"{ratios[index]:.3f}", "", ""])
    print_table(
        f"photos: {len(photos)} distinct 12 MP JPEGs, budget {setup.max_pixels} px, {CONCURRENCY} in flight, "
        f"no rate limit, server latency 0.05 s, {rounds} alternated rounds",
        rows, ["run", "requests", "steady req/s at server", "wall s", "peak RSS MiB"],
    )  # fmt: skip
    parts = {
        side: {part: statistics.median(per_image(run, small[side])[part] for run in runs[side]) for part in PARTS}
        for side in ("bare", "flow")
    }
    parts["flow - bare"] = {part: parts["flow"][part] - parts["bare"][part] for part in PARTS}
    print_table(
        "CPU ms per image by part (start-up taken out, median of rounds)",
        [[side, *(f"{v[part]:.1f}" for part in PARTS), f"{sum(v.values()):.1f}"] for side, v in parts.items()],
        ["run", *PARTS, "total"],
    )
    median = statistics.median(ratios)
    # On two saturated cores a run's rate is the inverse of its CPU per image, whatever else the machine
    # runs; the rates themselves swing with other load, so the CPU ratio is printed beside them.
    cpu_ratio = sum(parts["bare"].values()) / sum(parts["flow"].values())
    print(f"flow/bare requests per second: median {median:.3f} (target >= 0.90), rounds {[round(r, 3) for r in ratios]}")
    print(f"bare/flow CPU per image (the rate ratio on two saturated cores): {cpu_ratio:.3f}")
    return {
        "photos": len(photos), "max_pixels": setup.max_pixels, "ratio_median": median, "ratios": ratios,
        "cpu_ratio": cpu_ratio,
        "cpu_ms_per_image": parts,
        "runs": {side: [run.measured.__dict__ | {"prepare_cpu_s": run.prepare_cpu_s} for run in rs] for side, rs in runs.items()},
    }  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        _, _, stats_path, folder_text, url, concurrency_text, pixels_text = sys.argv
        asyncio.run(bare_photo_loop(stats_path, Path(folder_text), url, int(concurrency_text), int(pixels_text)))
    elif sys.argv[1] == "flow":
        sys.exit(flow_child(sys.argv[2], sys.argv[4:]))
