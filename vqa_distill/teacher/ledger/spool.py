"""The run folder's spool: paid outcomes kept on disk while the ledger's database is away.

An answer is paid for before it is recorded. When the database stays away longer than a record
waits for it, the outcome is written here instead of failing the task (whose retry would ask and
pay again), and written to the database when it answers (``Ledger.flush_spool``).

One file per outcome, ``<run folder>/ledger-spool/<ns>-<random>-<key prefix>.jsonl``, holding one
line: the record as ``responses.jsonl`` holds it. One file per outcome because:

- a file appears whole or not at all (temp file, fsync, rename, then the folder fsynced), so a
  kill leaves no half line to repair;
- a flush removes exactly the files whose records it committed (a file spooled meanwhile stays);
- shards on several machines share the run folder and never append to one file.

Names start with the time in nanoseconds, so a flush replays outcomes in the order they came.
Temp files start with a dot and are never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_lines

SPOOL_DIR = "ledger-spool"
SPOOL_SUFFIX = ".jsonl"
KEY_PREFIX_CHARS = 16  # enough of the content key for a person to find the file
RANDOM_BYTES = 6  # two writers in the same nanosecond (threads, machines) still get two names


class Spool:
    """The spool folder of one run folder: put an outcome, list what is waiting, remove what was written."""

    def __init__(self, out_dir: str | Path):
        self.folder = Path(out_dir) / SPOOL_DIR

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def put(self, values: dict[str, Any]) -> Path:
        """Write one record (a ``TeacherRecord.to_json()`` dict) durably; return its file."""
        key = "".join(c for c in str(values.get("key", "")) if c.isalnum())[:KEY_PREFIX_CHARS] or "record"
        path = self.folder / f"{time.time_ns():020d}-{secrets.token_hex(RANDOM_BYTES)}-{key}{SPOOL_SUFFIX}"
        atomic_write_lines(path, [json.dumps(values, ensure_ascii=False, sort_keys=True)])
        _sync_folder(self.folder)  # the rename itself survives a power cut
        return path

    def files(self) -> list[Path]:
        """Return the spooled files, oldest first (none when the folder does not exist)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [self.folder / name for name in sorted(names) if name.endswith(SPOOL_SUFFIX) and name[0] != "."]

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """Return (file, record dict) for every readable spooled file, oldest first.

        A file that vanished meanwhile (another process flushed it) is skipped; so is one that is not
        a record, which stays for a person to look at (only ``put`` writes here).
        """
        found: list[tuple[Path, dict[str, Any]]] = []
        for path in self.files():
            try:
                values = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # gone (flushed by another process) or not JSON: left alone
                continue
            if isinstance(values, dict) and isinstance(values.get("key"), str):
                found.append((path, values))
        return found

    def keys_with_status(self, statuses: Iterable[str]) -> set[str]:
        """Return the keys of spooled records with one of ``statuses``."""
        wanted = set(statuses)
        return {values["key"] for _path, values in self.entries() if values.get("status") in wanted}

    def remove(self, paths: Iterable[Path]) -> None:
        """Remove files whose records the database now holds (one already gone is fine)."""
        removed = False
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed = True
        if removed:
            _sync_folder(self.folder)


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a file renamed into it (or removed) stays so after a power cut."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
