"""Benchmark the team stack's scale-out: one process vs three workers, and the global limit across them.

A real team stack (``stack up --postgres --redis --cpu-workers 3 --offline-teacher``) under a temp
home; the offline teacher answers every request after 1 s (latency-bound, as a vision API is), and
each run caps its requests in flight (``--concurrency``, per worker). Three rows, each on its own
prompt so no answer comes from the cache of another row:

1. one process: ``vqa-distill generate`` without shards, its requests all from one process;
2. three workers: ``--shards 3``, one teacher-shard run on each worker, the same cap per run;
3. three workers under a global limit set below their total: ``--rpm`` at half of row 2's rate.

Throughput is measured at the teacher (answers / the span from the first request to the last
answer), so the start of the processes is not counted for either side. The limit row prints the
most requests the teacher saw in any 60-second window, against the RPM.

Run: .venv/bin/python bench/scale.py [--images 960] [--concurrency 8] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vqa_distill.ops import stack
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.ops.stack_state import stack_client_env
from vqa_distill.ops.team import TeamOptions

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One measured run."""

    name: str
    answered: int
    span_s: float
    max_per_60s: int
    rpm: int | None

    @property
    def per_second(self) -> float:
        return self.answered / self.span_s if self.span_s else 0.0


def make_images(folder: Path, count: int) -> None:
    """Write ``count`` small PNGs, distinct in content (latency-bound: the pixels are not what is measured).

    PNG, not JPEG: a one-pixel mark can vanish in JPEG's chroma subsampling, and two images with the
    same bytes are one request (asked once, by content).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.new("RGB", (96, 64), ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256))
        for bit in range(16):
            image.putpixel((bit, 0), (255, 255, 255) if index >> bit & 1 else (0, 0, 0))
        image.save(folder / f"img_{index:05d}.png")


def teacher(base: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{base}{path}", json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def max_in_window(times: list[float], window: float = 60.0) -> int:
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_row(name: str, env: dict[str, str], admin: str, base_url: str, images: Path, out: Path,
            concurrency: int, shards: int, rpm: int | None) -> Row:  # fmt: skip
    teacher(admin, "POST", "/_admin/reset")
    argv = [
        sys.executable, "-m", "vqa_distill.cli", "generate", "--images", str(images), "--out", str(out),
        "--base-url", base_url, "--prompt", f"Describe it ({name}).", "--concurrency", str(concurrency),
        "--shards", str(shards), "--rpm", str(rpm or 1_000_000), "--tpm", "1000000000", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{name}: generate failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    records = [r for r in teacher(admin, "GET", "/_admin/stats")["requests"] if r.get("fingerprints")]
    answered = [r for r in records if r["status"] == 200]
    span = max(r["t"] + r["duration_s"] for r in answered) - min(r["t"] for r in records)
    return Row(name, len(answered), span, max_in_window([r["t"] for r in records]), rpm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=960, help="images per row (default 960: the limited row lasts over a minute)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker (default 8)")
    parser.add_argument("--latency", type=float, default=1.0, help="teacher seconds per answer (default 1.0)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="vqa-scale-"))
    home.chmod(0o755)
    teacher_port = free_port()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    os.environ["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    team = TeamOptions(postgres=True, redis=True, cpu_workers=3, runs_per_worker=1,  # one shard per worker
                       postgres_port=free_port(), redis_port=free_port())
    say = lambda line: print(f"  [stack] {line}", flush=True)  # noqa: E731
    state = stack.up(home / "stack", port=free_port(), gpu_worker="none", offline_teacher=True,
                     teacher_port=teacher_port, team=team, say=say)  # fmt: skip
    try:
        admin = f"http://127.0.0.1:{teacher_port}"
        teacher(admin, "PUT", "/_admin/latency", {"latency_s": args.latency, "jitter_s": 0.0})
        images = home / "stack" / "shared" / "images"
        make_images(images, args.images)
        env = {**os.environ, **stack_client_env(home / "stack")}  # the ledger's own role, as the workers
        base_url = state.services["teacher"]
        out = home / "stack" / "shared" / "runs"
        print(f"{args.images} images, teacher latency {args.latency:.1f} s, {args.concurrency} in flight per worker", flush=True)
        one = run_row("one process", env, admin, base_url, images, out / "one", args.concurrency, 1, None)
        print(f"  one process: {one.per_second:.2f} answers/s", flush=True)
        three = run_row("three workers", env, admin, base_url, images, out / "three", args.concurrency, 3, None)
        print(f"  three workers: {three.per_second:.2f} answers/s", flush=True)
        limit = max(60, int(three.per_second * 60 / 2))
        limited = run_row("three workers, global limit", env, admin, base_url, images, out / "limited",
                          args.concurrency, 3, limit)  # fmt: skip
    finally:
        stack.down(home / "stack", say=say)
    rows = [one, three, limited]
    print()
    print("| run | answers | span s | answers/s | vs one process | max in 60 s | RPM |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.name} | {row.answered} | {row.span_s:.1f} | {row.per_second:.2f} | "
              f"{row.per_second / one.per_second:.2f}x | {row.max_per_60s} | {row.rpm or '-'} |")  # fmt: skip
    ideal = args.concurrency / args.latency
    print(f"\nideal per worker: {ideal:.1f} answers/s; three workers reach {three.per_second / one.per_second:.2f}x one process "
          f"(target >= 2.7x); under the global limit of {limited.rpm} RPM the teacher saw at most {limited.max_per_60s} "
          f"requests in a 60-second window ({'held' if limited.max_per_60s <= (limited.rpm or 0) else 'EXCEEDED'}).")


if __name__ == "__main__":
    main()
