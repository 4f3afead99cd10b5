"""Benchmark the teacher stage against the offline server: rate kept, orchestration overhead, memory.

Each scenario runs twice in the same session, side by side:
  bare  - a plain asyncio + AsyncOpenAI loop (semaphore + the same rate gate), no Prefect, no ledger
  flow  - ``vqa-distill generate`` (Prefect flow, one task run per image, ledger, artifacts)
both in their own process, so peak RSS and CPU seconds are each one's own.

Scenarios:
  rate      - the server answers after --latency s; both are limited to --rate req/s. Target: flow >= 95% of it.
  overhead  - no rate limit, --fast-latency s: the CPU seconds per image beyond the bare loop is what the
              orchestration costs. Target: under 5 ms.
  memory    - with --memory-images N (e.g. 10000): the flow's peak RSS. Target: under 1 GiB.
  two-stage - questions mode: --two-stage-images images x (1 question list + --questions answers), at the
              rate scenario's limit and latency, printed beside its single-prompt flow. Target: >= 95% of it.
  photos    - --photos distinct 12 MP camera-like JPEGs (bench/photos.py, cached) through the flow and a bare
              asyncio + openai loop with its own Pillow preparation, same pixel budget, alternated --rounds
              times, no rate limit: the requests/s ratio and CPU per image by part (preparation, client
              orchestration, Prefect server, teacher). Target: flow >= 0.90 of bare (bench/photo_race.py).

Run: .venv/bin/python bench/teacher.py [--images 1000] [--rate 50] [--latency 1.0] [--memory-images 10000]
     [--two-stage-images 200] [--questions 5] [--photos 300] [--rounds 2]
     .venv/bin/python bench/teacher.py --photos-only [--photos 300] [--rounds 2] [--max-pixels N]
     .venv/bin/python bench/teacher.py --quick   # smoke only: 100 photos, one round (rates mean little under ~300)
     .venv/bin/python bench/teacher.py --costs   # only the online vs Batch API price of the run, per model
     .venv/bin/python bench/prepare.py           # preparing one photo: CPU and fidelity of each filter
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import OTHER_PIDS, Measured, print_table, run_measured, tree_cpu_seconds  # noqa: E402
from bench.photos import photo_paths  # noqa: E402

API_KEY = "sk-bench-not-a-real-key-000000000000"
PROMPT = "Describe the defects."
STARTUP_IMAGES = 20  # a run this small measures a process's fixed start-up cost


def make_images(folder: Path, count: int, scenario: int) -> None:
    """Write ``count`` small PNGs, distinct within and across scenarios (else the task cache answers them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.new("RGB", (64, 48), (index % 256, (index // 256) % 256, scenario))
        image.save(folder / f"img_{index:06d}.png")


def bare_argv(images: Path, base_url: str, rate: float, concurrency: int) -> list[str]:
    return [sys.executable, __file__, "--bare", str(images), base_url, str(rate), str(concurrency)]


def flow_argv(images: Path, out: Path, base_url: str, rate: float, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "vqa_distill.cli", "generate", "--images", str(images), "--out", str(out),
        "--base-url", base_url, "--prompt", PROMPT, "--rpm", str(int(rate * 60)), "--tpm", "1000000000",
        "--concurrency", str(concurrency), "--max-tokens", "200", "--no-progress",
    ]


async def bare_loop(images: Path, base_url: str, rate: float, concurrency: int) -> None:
    """The baseline: what a careful user writes by hand, with the same client, image preparation and bucket."""
    from vqa_distill.teacher.endpoint.client import make_client
    from vqa_distill.teacher.images.prepare import prepare_image
    from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS
    from vqa_distill.teacher.ratelimit.gate import RateGate

    client = make_client(base_url=base_url, api_key=API_KEY, timeout=60)  # the same HTTP stack as the flow
    gate = RateGate(rpm=int(rate * 60), tpm=1_000_000_000)
    in_flight = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> None:
        async with in_flight:
            image = await asyncio.to_thread(prepare_image, path, DEFAULT_MAX_PIXELS)
            await gate.acquire(1)
            await client.chat.completions.create(
                model="gpt-4o-mini",
                max_tokens=200,
                messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": image.data_url, "detail": "auto"}},
                    {"type": "text", "text": PROMPT},
                ]}],
            )

    await asyncio.gather(*(one(path) for path in sorted(images.iterdir())))
    await client.close()


def cpu_columns(measured: Measured, images: int) -> list[str]:
    """CPU milliseconds per image of the client process, the Prefect server and the offline teacher."""
    return [f"{1000 * cpu / images:.1f}" for cpu in (measured.cpu_s, measured.prefect_cpu_s, measured.teacher_cpu_s)]


async def prefect_floor(count: int) -> None:
    """Run ``count`` no-op async task runs in one flow, 64 in flight: what Prefect itself costs per task run."""
    from prefect import flow, task

    @task(task_run_name="noop[{index}]")
    async def noop(index: int) -> int:
        return index

    @flow(name="bench-floor")
    async def floor_flow() -> None:
        in_flight = asyncio.Semaphore(64)

        async def one(index: int) -> None:
            async with in_flight:
                await noop(index)

        await asyncio.gather(*(one(index) for index in range(count)))

    await floor_flow()


def floor_cpu(count: int, env: dict[str, str]) -> tuple[float, float]:
    """Run the Prefect floor in a child; return (its CPU seconds, the Prefect server's CPU seconds)."""
    before = tree_cpu_seconds(OTHER_PIDS["prefect"])
    process = subprocess.Popen([sys.executable, __file__, "--floor", str(count)], env=env, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the Prefect floor run failed")
    return usage.ru_utime + usage.ru_stime, tree_cpu_seconds(OTHER_PIDS["prefect"]) - before


def two_stage(server: Any, env: dict[str, str], work: Path, args: argparse.Namespace, single: Measured) -> dict[str, Any]:
    """Questions mode at the rate scenario's limit and latency: the rate kept, beside the single-prompt flow's.

    Every image first asks for its question list, then one answer per question, under the same bounded
    fan-out and rate gate; answers start as soon as an image's questions are in.
    """
    folder = work / "two-stage"
    make_images(folder, args.two_stage_images, scenario=4)
    server.set_latency(args.latency)
    argv = flow_argv(folder, work / "out-two-stage", server.base_url, args.rate, args.concurrency)
    staged = run_measured("flow, questions", [*argv, "--questions", str(args.questions)], env, server)
    calls = args.two_stage_images * (1 + args.questions)
    print_table(
        f"two-stage: {args.two_stage_images} images x (1 question list + {args.questions} answers), "
        f"limit {args.rate:g} req/s, server latency {args.latency:g} s",
        [[m.name, m.requests, f"{m.wall_s:.1f}", f"{m.server_rate:.2f}", f"{100 * m.server_rate / args.rate:.1f}%",
          f"{1000 * m.cpu_s / m.requests:.1f}", f"{m.peak_rss_mib:.0f}"] for m in (single, staged)],
        ["run", "requests", "wall s", "steady req/s at server", "of limit", "client CPU ms/request", "peak RSS MiB"],
    )
    if staged.requests != calls:
        print(f"warning: {staged.requests} requests at the server, {calls} expected")
    return {"limit": args.rate, "questions": args.questions, "single": single.__dict__, "two_stage": staged.__dict__}


COST_IMAGE_SIZE = (1773, 1330)  # a 4:3 photo at the default pixel budget (1536*1536 pixels)
COST_ANSWER_TOKENS = 200  # assumed answer length; reasoning models also bill their reasoning as output


def print_cost_table(images: int = 1000) -> list[dict[str, Any]]:
    """Print what ``images`` images x one prompt cost online and through the Batch API, per model; return the rows."""
    from vqa_distill.teacher.endpoint.models import MODELS
    from vqa_distill.teacher.endpoint.pricing import estimate_cost
    from vqa_distill.teacher.endpoint.tokens import text_tokens

    rows: list[dict[str, Any]] = []
    for name, spec in MODELS.items():
        if not spec.vision or spec.price is None or spec.price.input == 0:
            continue
        prompt = spec.image_tokens(*COST_IMAGE_SIZE, "auto") + text_tokens(PROMPT)
        online = estimate_cost(name, prompt * images, COST_ANSWER_TOKENS * images) or 0.0
        batch = estimate_cost(name, prompt * images, COST_ANSWER_TOKENS * images, batch=True) or 0.0
        rows.append({"model": name, "images": images, "prompt_tokens_per_image": prompt,
                     "completion_tokens_per_image": COST_ANSWER_TOKENS, "online_usd": online, "batch_usd": batch,
                     "saving_usd": round(online - batch, 6)})  # fmt: skip
    print_table(
        f"cost of {images} images x 1 prompt ({COST_IMAGE_SIZE[0]}x{COST_IMAGE_SIZE[1]} photo, detail auto, "
        f"{COST_ANSWER_TOKENS}-token answers), list prices of vqa_distill/teacher/endpoint/models.py",
        [[r["model"], r["images"], r["prompt_tokens_per_image"], r["completion_tokens_per_image"],
          f"{r['online_usd']:.2f}", f"{r['batch_usd']:.2f}", f"{r['saving_usd']:.2f}"] for r in rows],
        ["model", "images", "prompt tok/img", "completion tok/img", "online $", "batch $", "saving $"],
    )
    return rows


def other_scenarios(server: Any, env: dict[str, str], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The small-image scenarios: rate kept, orchestration overhead, two-stage, memory."""
    results: dict[str, Any] = {}
    rate_images = work / "rate"
    make_images(rate_images, args.images, scenario=1)
    server.set_latency(args.latency)
    bare = run_measured("bare", bare_argv(rate_images, server.base_url, args.rate, args.concurrency), env, server)
    flow = run_measured(
        "flow", flow_argv(rate_images, work / "out-rate", server.base_url, args.rate, args.concurrency), env, server
    )
    print_table(
        f"rate: {args.images} images, limit {args.rate:g} req/s, server latency {args.latency:g} s",
        [[m.name, m.requests, f"{m.server_rate:.2f}", f"{100 * m.server_rate / args.rate:.1f}%",
          *cpu_columns(m, args.images), f"{m.peak_rss_mib:.0f}"] for m in (bare, flow)]
        + [["flow/bare", "", f"{flow.server_rate / bare.server_rate:.3f}", "", "", "", "", ""]],
        ["run", "requests", "steady req/s at server", "of limit", "client CPU ms/img",
         "prefect server CPU ms/img", "teacher CPU ms/img", "peak RSS MiB"],
    )
    results["rate"] = {"limit": args.rate, "bare": bare.__dict__, "flow": flow.__dict__}
    if args.two_stage_images:
        results["two_stage"] = two_stage(server, env, work, args, single=flow)

    # Orchestration overhead per image: the CPU the flow's process spends per image beyond the
    # bare loop's, with each process's fixed start-up cost taken out (a run over a few images).
    server.set_latency(args.fast_latency)
    unlimited = 1_000_000.0
    runs: dict[str, dict[int, Measured]] = {"bare": {}, "flow": {}}
    for count in (STARTUP_IMAGES, args.images):
        folder = work / f"fast-{count}"
        make_images(folder, count, scenario=2 + count % 200)
        runs["bare"][count] = run_measured("bare", bare_argv(folder, server.base_url, unlimited, 64), env, server)
        runs["flow"][count] = run_measured(
            "flow", flow_argv(folder, work / f"out-fast-{count}", server.base_url, unlimited, 64), env, server
        )
    per_image = {
        name: {
            "client": 1000 * (by[args.images].cpu_s - by[STARTUP_IMAGES].cpu_s) / (args.images - STARTUP_IMAGES),
            "prefect": 1000 * (by[args.images].prefect_cpu_s - by[STARTUP_IMAGES].prefect_cpu_s)
            / (args.images - STARTUP_IMAGES),
            "wall": 1000 * by[args.images].span_s / args.images,
        }
        for name, by in runs.items()
    }
    small, large = floor_cpu(STARTUP_IMAGES, env), floor_cpu(args.images, env)
    per_image["prefect floor"] = {
        "client": 1000 * (large[0] - small[0]) / (args.images - STARTUP_IMAGES),
        "prefect": 1000 * (large[1] - small[1]) / (args.images - STARTUP_IMAGES),
        "wall": float("nan"),
    }
    overhead = {key: per_image["flow"][key] - per_image["bare"][key] for key in ("client", "prefect", "wall")}
    print_table(
        f"overhead: {args.images} images, no rate limit, server latency {args.fast_latency:g} s "
        f"(per image, start-up taken out)",
        [[name, f"{v['client']:.2f}", f"{v['prefect']:.2f}", f"{v['wall']:.2f}",
          f"{runs[name][args.images].server_rate:.1f}" if name in runs else ""]
         for name, v in per_image.items()]
        + [["flow - bare", f"{overhead['client']:.2f}", f"{overhead['prefect']:.2f}", f"{overhead['wall']:.2f}", ""]],
        ["run", "client CPU ms", "prefect server CPU ms", "wall ms (server span / images)", "req/s"],
    )
    print("prefect floor: a flow of no-op async task runs, the engine's own cost per task run")
    results["overhead"] = {"per_image_ms": per_image, "flow_minus_bare_ms": overhead}

    if args.memory_images:
        big = work / "memory"
        make_images(big, args.memory_images, scenario=3)
        memory = run_measured(
            "flow", flow_argv(big, work / "out-memory", server.base_url, unlimited, 256), env, server
        )
        print_table(
            f"memory: {args.memory_images} images through the flow",
            [[memory.requests, f"{memory.wall_s:.1f}", f"{memory.peak_rss_mib:.0f}",
              f"{1000 * memory.wall_s / args.memory_images:.2f}"]],
            ["requests", "wall s", "peak RSS MiB", "wall ms/image"],
        )
        results["memory"] = memory.__dict__
    return results


def photo_scenario(server: Any, env: dict[str, str], work: Path, args: argparse.Namespace, photos: list[Path]) -> dict[str, Any]:
    """The photo race (bench/photo_race.py): real 12 MP photos, the flow against a bare loop."""
    from bench.photo_race import RaceSetup, race
    from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS

    def argv(folder: Path, out: Path, base_url: str) -> list[str]:
        return flow_argv(folder, out, base_url, 1_000_000.0, 64)

    # The flow logs as a user's run does (INFO to the API): what each task run writes is measured too.
    env = {name: value for name, value in env.items() if name != "PREFECT_LOGGING_LEVEL"}
    setup = RaceSetup(server, env, work, args.max_pixels or DEFAULT_MAX_PIXELS, argv)
    return race(setup, photos, args.rounds, startup_photos=min(20, len(photos) // 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="images per rate/overhead scenario")
    parser.add_argument("--rate", type=float, default=50.0, help="configured requests per second")
    parser.add_argument("--latency", type=float, default=1.0, help="server latency in the rate scenario (s)")
    parser.add_argument("--fast-latency", type=float, default=0.05, help="server latency in the overhead scenario")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--memory-images", type=int, default=0, help="also run the flow over this many images")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--two-stage-images", type=int, default=200, help="images of the two-stage run (0: skip)")
    parser.add_argument("--questions", type=int, default=5, help="questions per image in the two-stage run")
    parser.add_argument("--costs", action="store_true", help="only print the online vs Batch API cost table")
    parser.add_argument("--photos", type=int, default=300, help="12 MP photos of the photo race (0: skip)")
    parser.add_argument("--rounds", type=int, default=2, help="alternated bare/flow rounds of the photo race")
    parser.add_argument("--max-pixels", type=int, default=0, help="the photo race's pixel budget (0: the default)")
    parser.add_argument("--photos-only", action="store_true", help="run only the photo race")
    parser.add_argument("--quick", action="store_true", help="smoke only: a 100-photo race, one round (its rates mean little)")
    args = parser.parse_args()
    if args.quick:
        args.photos, args.rounds, args.photos_only = min(args.photos, 100), 1, True
    if args.costs:
        print_cost_table(args.images)
        return

    from vqa_distill.offline_teacher.process import running_teacher_server
    from vqa_distill.ops.prefect_server import SERVER_SETTINGS, free_port, start_server
    from vqa_distill.supervisor import stop_process

    work = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
    photos = photo_paths(args.photos) if args.photos else []  # generated once, cached, before any timing
    env = dict(os.environ)
    env.update({
        "OPENAI_API_KEY": API_KEY,
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / "results"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    })
    env.update(SERVER_SETTINGS)
    port = free_port()
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    prefect = start_server(port, env, work / "logs")  # started before timing: its start-up is no measurement
    results: dict[str, Any] = {}
    try:
        with running_teacher_server(api_key=API_KEY) as server:
            OTHER_PIDS.update(prefect=prefect.pid, teacher=server.process.pid)
            if args.photos:
                results["photos"] = photo_scenario(server, env, work, args, photos)
            if not args.photos_only:
                results.update(other_scenarios(server, env, work, args))
    finally:
        stop_process(prefect)
    if not args.photos_only:
        results["costs"] = print_cost_table(args.images)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        asyncio.run(prefect_floor(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        _, _, folder, url, rate_text, concurrency_text = sys.argv
        asyncio.run(bare_loop(Path(folder), url, float(rate_text), int(concurrency_text)))
        # The child's own peak RSS is what wait4 reports to the parent.
        resource.getrusage(resource.RUSAGE_SELF)
    else:
        main()
