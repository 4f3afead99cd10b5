"""What the teacher benchmarks measure about a child process and the servers beside it.

A run is one child process waited for with ``wait4`` (its own CPU and peak RSS), the offline teacher's
request timestamps (the rate the server saw), and the CPU the Prefect server and the teacher used
meanwhile (psutil, which reads /proc).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

OTHER_PIDS: dict[str, int] = {}  # "prefect" and "teacher": servers whose CPU each run is charged with


@dataclass
class Measured:
    """One process's run: what the server saw and what the process used."""

    name: str
    requests: int
    wall_s: float
    span_s: float  # first to last request at the server: start-up and shutdown excluded
    server_rate: float
    cpu_s: float
    peak_rss_mib: float
    prefect_cpu_s: float = 0.0  # the Prefect server's CPU during the run (it shares the machine)
    teacher_cpu_s: float = 0.0  # the offline teacher's CPU during the run


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its children."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(name: str, argv: list[str], env: dict[str, str], server: Any) -> Measured:
    """Run a child process, wait for it with wait4 (its own rusage), and read the server's timestamps."""
    server.reset()
    before = {name: tree_cpu_seconds(pid) for name, pid in OTHER_PIDS.items()}
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise SystemExit(f"{name} exited with {code}:\n{stderr[-3000:]}")
    times = sorted(r["t"] for r in server.stats()["requests"] if r.get("fingerprints"))
    # The steady rate: skip the first fifth, which holds the bucket's initial burst and the start-up.
    steady = times[len(times) // 5 :]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    used = {name: tree_cpu_seconds(pid) - before[name] for name, pid in OTHER_PIDS.items()}
    return Measured(
        name, len(times), wall, span, rate, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
        prefect_cpu_s=used.get("prefect", 0.0), teacher_cpu_s=used.get("teacher", 0.0),
    )


def print_table(title: str, rows: list[list[Any]], header: list[str]) -> None:
    """Print ``rows`` under ``header`` as aligned columns, after a blank line and ``title``."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
