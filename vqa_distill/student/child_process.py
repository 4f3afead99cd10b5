"""Run an ms-swift command (or our inference worker) as a child process, its output teed to a log file.

A child process, not ms-swift's Python API in the caller: the GPU memory of a training run is freed
when it exits (a Prefect worker lives on), ``CUDA_VISIBLE_DEVICES`` takes effect before torch starts,
and ``NPROC_PER_NODE`` lets ms-swift's own launcher start torchrun for several GPUs.
"""

from __future__ import annotations

import collections
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vqa_distill.errors import FatalRunError

TAIL_LINES = 30  # lines of the child's output quoted when it fails

LineSink = Callable[[str], None]


def run_logged(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    on_line: LineSink | None = None,
    what: str = "command",
) -> None:
    """Run ``argv`` with ``env`` added to ours; every output line goes to ``log_path`` and ``on_line``.

    Raises FatalRunError quoting the last lines of output when the child exits non-zero.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    child_env = {**os.environ, **(env or {})}
    with log_path.open("a", encoding="utf-8") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        with subprocess.Popen(
            list(argv),
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                tail.append(line.rstrip())
                if on_line is not None:
                    on_line(line.rstrip())
            returncode = process.wait()
    if returncode != 0:
        quoted = "\n".join(tail)
        raise FatalRunError(f"{what} failed with exit code {returncode} (full log: {log_path}):\n{quoted}")


def list_run_dirs(output_dir: Path) -> set[Path]:
    """The run directories ms-swift has written under ``output_dir`` (those holding an args.json)."""
    if not output_dir.is_dir():
        return set()
    return {p for p in output_dir.iterdir() if (p / "args.json").is_file()}


def new_run_dir(output_dir: Path, before: set[Path]) -> Path:
    """The single run directory that appeared under ``output_dir`` since ``before`` was listed."""
    created = sorted(list_run_dirs(output_dir) - before)
    if len(created) != 1:
        raise FatalRunError(
            f"expected one new ms-swift run directory under {output_dir}, found {[str(p) for p in created]}"
        )
    return created[0]
