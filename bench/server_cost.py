"""Measure what a run's images cost the Prefect server on PostgreSQL: rows, disk, time to open the run.

A real team stack (PostgreSQL + Redis, one worker) and the offline teacher with no latency; one
``generate`` run per size (``--sizes``), each on new images. After each run it reads, from
PostgreSQL, the rows each table gained and the growth of the ``prefect`` database, and times the
API requests the UI makes to open the run's page (the run, its task-run count and first page, its
graph, its first page of logs), median of three. The table ends with a linear extrapolation to
100,000 images from the two largest sizes (marked as such): a 100,000-image run takes about an
hour of this machine's two cores, the sizes here a few minutes.

Run: .venv/bin/python bench/server_cost.py [--sizes 2000 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scale import make_images
from vqa_distill.ops import stack
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.stack_state import stack_client_env
from vqa_distill.ops.team import TeamOptions

REPO = Path(__file__).resolve().parents[1]
TABLES = ("flow_run", "task_run", "task_run_state", "log", "events", "event_resources", "artifact")
TARGET = 100_000


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as db:
        values = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]
        values["bytes"] = db.execute("SELECT pg_database_size('prefect')").fetchone()[0]  # type: ignore[index]
    return values


def timed(client: httpx.Client, method: str, path: str, body: Any = None) -> float:
    """Median seconds of three calls; NaN when the server refuses (the run graph has a node limit)."""
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        response = client.request(method, path, json=body)
        if response.status_code >= 400:
            print(f"  {method} {path}: HTTP {response.status_code} {response.text[:200]}", flush=True)
            return float("nan")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def open_run_page(client: httpx.Client, run_id: str) -> dict[str, float]:
    """Time what the run page asks for (the UI sends these as the page opens)."""
    in_run = {"flow_runs": {"id": {"any_": [run_id]}}}
    return {
        "run": timed(client, "GET", f"/flow_runs/{run_id}"),
        "task count": timed(client, "POST", "/task_runs/count", in_run),
        "task page": timed(client, "POST", "/task_runs/filter", {**in_run, "limit": 50, "sort": "EXPECTED_START_TIME_DESC"}),
        "graph": timed(client, "GET", f"/flow_runs/{run_id}/graph-v2"),
        "logs": timed(client, "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}),
    }


def _seconds(value: float, prefix: str = "") -> str:
    """A time for the table; a refused request (NaN: the graph's node limit) says so."""
    return "refused" if math.isnan(value) else f"{prefix}{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="vqa-server-cost-"))
    home.chmod(0o755)
    teacher_port = free_port()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    team = TeamOptions(postgres=True, redis=True, cpu_workers=1, postgres_port=free_port(), redis_port=free_port())
    state = stack.up(home / "stack", port=free_port(), gpu_worker="none", offline_teacher=True,
                     teacher_port=teacher_port, team=team, say=lambda line: print(f"  [stack] {line}", flush=True))  # fmt: skip
    rows = []
    try:
        secret = (home / "stack" / "secrets" / "postgres-password").read_text().strip()
        base = f"postgresql://postgres:{secret}@127.0.0.1:{team.postgres_port}"
        client_env = stack_client_env(home / "stack")
        env = {**os.environ, **client_env}  # the ledger's own role, as the workers
        user, password = client_env["PREFECT_API_AUTH_STRING"].split(":", 1)
        api = httpx.Client(base_url=state.api_url, auth=(user, password), timeout=300)
        for size in args.sizes:
            images = home / "stack" / "shared" / f"images-{size}"
            make_images(images, size)
            before = counts(f"{base}/prefect")
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "vqa_distill.cli", "generate", "--images", str(images), "--out",
                 str(home / "stack" / "shared" / f"run-{size}"), "--base-url", f"http://127.0.0.1:{teacher_port}/v1",
                 "--prompt", f"Describe it ({size}).", "--rpm", "1000000", "--tpm", "1000000000", "--concurrency", "32",
                 "--no-progress"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=7200,
            )  # fmt: skip
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"generate failed:\n{(done.stdout + done.stderr)[-3000:]}")
            time.sleep(5)  # the event and log recorders flush in batches
            after = counts(f"{base}/prefect")
            run_id = api.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["generate"]}},
                                                         "sort": "START_TIME_DESC", "limit": 1}).json()[0]["id"]  # fmt: skip
            rows.append((size, wall, {k: after[k] - before[k] for k in after}, open_run_page(api, run_id)))
            print(f"  {size} images: {wall:.0f} s", flush=True)
    finally:
        stack.down(home / "stack", say=lambda line: None)
    print("\n| images | run s | " + " | ".join(f"{t} rows" for t in TABLES) + " | prefect DB growth MB | open page s (run / count / page / graph / logs) |")
    print("|---:|---:|" + "---:|" * len(TABLES) + "---:|---|")
    for size, wall, grew, page in rows:
        cells = " | ".join(f"{grew[t]:,}" for t in TABLES)
        times = " / ".join(_seconds(page[k]) for k in ("run", "task count", "task page", "graph", "logs"))
        print(f"| {size:,} | {wall:.0f} | {cells} | {grew['bytes'] / 1e6:.1f} | {times} |")
    (small, _, grew_small, page_small), (big, _, grew_big, page_big) = rows[-2], rows[-1]

    def at_target(small_value: float, big_value: float) -> float:
        """Linear in the images, through the two largest runs (per-run constants cancel out)."""
        if math.isnan(small_value) or math.isnan(big_value):
            return math.nan
        return max(0.0, big_value + (big_value - small_value) * (TARGET - big) / (big - small))

    cells = " | ".join(f"~{at_target(grew_small[t], grew_big[t]):,.0f}" for t in TABLES)
    mb = at_target(grew_small["bytes"], grew_big["bytes"]) / 1e6
    keys = ("run", "task count", "task page", "graph", "logs")
    times = " / ".join(_seconds(at_target(page_small[k], page_big[k]), "~") for k in keys)
    print(f"| {TARGET:,} (extrapolated) | | {cells} | ~{mb:,.0f} | {times} |")

if __name__ == "__main__":
    main()
