"""The ledger's cache of file hashes, read once per plan and looked up in memory.

A rerun must not re-read 100,000 unchanged photos to hash them, so the ledger keeps (path, size,
mtime, sha256) of every file it has seen. Asking the database per file cost one round trip per
image (100,000 per shard on PostgreSQL), so a plan reads the whole cache in one query, answers
``discover_images``'s lookups from memory, and writes back only the files that are new or changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

HashEntry = tuple[str, int, int, str]  # (path, size in bytes, mtime in ns, sha256)


class HashCache:
    """Known hashes by path; a file is known while its size and mtime are those it was hashed with."""

    def __init__(self, entries: Iterable[HashEntry]):
        self._known = {path: (size, mtime_ns, sha256) for path, size, mtime_ns, sha256 in entries}

    def __len__(self) -> int:
        return len(self._known)

    def __call__(self, path: Path, stat: os.stat_result) -> str | None:
        """Return the cached sha256 of an unchanged file, else None (``discover_images``'s ``known_hash``)."""
        known = self._known.get(str(path))
        if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
            return None
        return known[2]

    def changed(self, entries: Iterable[HashEntry]) -> list[HashEntry]:
        """Return the entries the cache does not hold as they are: the only ones worth writing back."""
        return [entry for entry in entries if self._known.get(entry[0]) != entry[1:]]
