"""Each worker runs its own copy of the checkout, as a worker on another machine would.

A worker on a second machine has its own clone: code it imports from the first machine's tree is a
bug the stack should show. The copy holds the files git tracks plus untracked files git does not
ignore (a work in progress is what the stack should run), and never the venv, the stack's own
state or data. Copies are refreshed on every ``up``; a file is rewritten only when it changed.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

from vqa_distill.errors import FatalRunError

# Without git (an unpacked archive), copy the tree minus these.
_IGNORED = {".git", ".venv", ".stack", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "data"}


def checkout_files(root: Path) -> list[str]:
    """Return the checkout's files relative to ``root``: git's tracked and unignored files, else the tree."""
    if (root / ".git").exists() and shutil.which("git"):
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise FatalRunError(f"git ls-files failed in {root}: {done.stderr.decode(errors='replace').strip()}")
        return [name for name in done.stdout.decode().split("\0") if name and (root / name).is_file()]
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix != ".pyc" and not _IGNORED.intersection(path.relative_to(root).parts)
    ]


def copy_checkout(root: Path, destination: Path) -> int:
    """Mirror the checkout into ``destination``; return the number of files written (0 when up to date)."""
    written = 0
    for name in checkout_files(root):
        source, target = root / name, destination / name
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        written += 1
    return written
