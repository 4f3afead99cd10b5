"""The loop's dataset, one version per round: the previous version plus the rows this round asked for.

Each row's metadata (``train.meta.jsonl``) says its kind, the user's prompt, its image and why it
is there (seed, targeted, doubt) and since which round. A row of a held-out image is refused here,
whatever asked for it, and so is a new row whose metadata does not name its image: the held-out set
is judged, never trained on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_lines
from vqa_distill.dataset.build import meta_file
from vqa_distill.dataset.rows import dumps_row
from vqa_distill.errors import FatalRunError

REASON_SEED = "seed"


@dataclass(frozen=True)
class VersionRow:
    """One row of a dataset version and its metadata."""

    row: dict[str, Any]
    meta: dict[str, Any]

    @property
    def identity(self) -> tuple[str, str]:
        """(image, last question): the same question about the same image is one row, whichever round asked it."""
        users = [m["content"] for m in self.row["messages"] if m["role"] == "user"]
        return str(self.meta.get("sha256")), users[-1] if users else ""


def read_version(train_file: Path) -> list[VersionRow]:
    """Read a split and its metadata file, line by line (missing metadata: empty)."""
    if not train_file.is_file():
        return []
    rows = [json.loads(line) for line in train_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    meta_path = meta_file(train_file)
    metas = [json.loads(line) for line in meta_path.read_text(encoding="utf-8").splitlines() if line.strip()] if meta_path.is_file() else []
    if len(metas) != len(rows):
        metas = [{} for _ in rows]
    return [VersionRow(row, meta) for row, meta in zip(rows, metas, strict=True)]


def grow(
    previous: Iterable[VersionRow],
    added: Mapping[str, Iterable[VersionRow]],
    *,
    round_number: int,
    held_out: set[str],
    focus_of: Mapping[str, str],
) -> tuple[list[VersionRow], Counter[str]]:
    """The next version: ``previous`` then each reason's new rows not seen before; counts of rows added by reason.

    ``focus_of`` maps a targeted unit's prompt back to the user's prompt, so the breakdown by prompt
    stays by the user's prompts.
    """
    rows = list(previous)
    seen = {row.identity for row in rows}
    counts: Counter[str] = Counter()
    for reason, new_rows in added.items():
        for row in new_rows:
            if not row.meta.get("sha256"):
                raise FatalRunError(f"a {reason} row has no image sha256 in its metadata: it cannot be checked against the held-out set")
            if row.meta.get("sha256") in held_out:
                raise FatalRunError(f"a {reason} row of held-out image {row.meta.get('sha256')} was about to enter training")
            if row.identity in seen:
                continue
            seen.add(row.identity)
            prompt = str(row.meta.get("prompt", ""))
            meta = {**row.meta, "prompt": focus_of.get(prompt, prompt), "reason": reason, "round": round_number}
            rows.append(VersionRow(row.row, meta))
            counts[reason] += 1
    return rows, counts


def write_version(path: Path, rows: Iterable[VersionRow]) -> Path:
    """Write the rows to ``path`` (``.../train.jsonl``) and their metadata beside it; returns ``path``."""
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_lines(path, (dumps_row(row.row) for row in rows))
    atomic_write_lines(meta_file(path), (json.dumps(row.meta, ensure_ascii=False) for row in rows))
    return path
