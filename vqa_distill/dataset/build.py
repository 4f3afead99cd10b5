"""Build the ms-swift training files from the ledger: validate, de-duplicate, split, write, report.

Rows of one image never straddle train and val (the split is by image), so validation measures
generalisation to unseen pictures, not memory of a second prompt about the same one. Each row points at
the copy of its image as the teacher saw it (``pictures.py``), never at the original file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from vqa_distill.atomic import atomic_write_lines, atomic_write_text
from vqa_distill.dataset.pictures import IMAGES_DIR, Source, make_copies, teacher_budget
from vqa_distill.dataset.quality import QualityReport
from vqa_distill.dataset.review import ReviewEntry, preview, write_review
from vqa_distill.dataset.rows import dumps_row, make_row, row_problems
from vqa_distill.teacher.ledger.records import KIND_ANSWER, STATUS_ANSWERED, Ledger
from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS

TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
STATS_FILE = "dataset_stats.json"
META_SUFFIX = ".meta.jsonl"  # a split's row metadata: val.jsonl -> val.meta.jsonl
KIND_PROMPT = "prompt"  # prompts mode: each row answers one of the user's prompts


class DatasetReport(BaseModel):
    """Where the dataset went and what is in it (also published as a Prefect artifact)."""

    train_path: str
    val_path: str | None
    train_rows: int
    val_rows: int
    images: int
    prompts: int
    dropped_invalid: int
    dropped_duplicates: int
    answer_words_mean: float
    answer_words_max: int
    invalid_reasons: list[str] = []
    quality: QualityReport | None = None  # questions mode: what the gates kept and left out
    rejected_path: str | None = None  # questions mode: every row left out, with its reason
    review_path: str | None = None  # review.html, when asked for
    review_preview: list[dict[str, Any]] = []  # the first rows of the review page's sample
    images_dir: str | None = None  # the copies the rows point at: each image as the teacher saw it
    images_copied: int = 0  # copies this build made; the others existed already (a rebuild makes none)
    teacher_model: str | None = None  # who wrote the answers: an evaluation's default judge
    teacher_base_url: str | None = None  # where it was asked (a URL's password masked)


def answered_table(ledger: Ledger, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """Return the usable answers (all, or those of ``keys``) as a table, one row per request."""
    wanted = set(keys) if keys is not None else None
    rows = [
        {
            "key": r.key,
            "sha256": r.sha256,
            "image_path": r.image_path,
            "prompt": r.prompt,
            "system": r.system,
            "answer": r.answer or "",
            "updated_at": r.updated_at,
            "model": r.model,
            "max_pixels": int(r.params.get("max_pixels") or DEFAULT_MAX_PIXELS),  # the run's budget then
        }
        for r in ledger.records(STATUS_ANSWERED)
        if r.kind == KIND_ANSWER and (wanted is None or r.key in wanted)
    ]
    columns = [
        "key",
        "sha256",
        "image_path",
        "prompt",
        "system",
        "answer",
        "updated_at",
        "model",
        "max_pixels",
    ]
    return pd.DataFrame(rows, columns=columns)


def to_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Add the ms-swift row and its problems (structural, plus a missing image file) to each answer."""
    table = table.copy()
    table["row"] = [
        make_row(image_path=path, prompt=prompt, answer=answer, system=system)
        for path, prompt, answer, system in zip(
            table["image_path"], table["prompt"], table["answer"], table["system"], strict=True
        )
    ]
    table["problems"] = [
        row_problems(row) + ([] if Path(path).is_file() else [f"image file missing: {path}"])
        for row, path in zip(table["row"], table["image_path"], strict=True)
    ]
    return table


def with_pictures(out: Path, table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Point each row at the copy of its image as the teacher saw it (``pictures.py``); a row whose image
    has no copy gets the reason as a problem. Returns the table, with a ``picture`` column, and the copies
    made now."""
    sources = [
        Source(path, sha, teacher_budget(model, int(pixels)))
        for path, sha, model, pixels in zip(
            table["image_path"], table["sha256"], table["model"], table["max_pixels"], strict=True
        )
    ]
    copies = make_copies(out, sources)
    table = table.copy()
    table["picture"] = [copies.paths.get(source) for source in sources]
    table["row"] = [
        {**row, "images": [picture]} if picture else row
        for row, picture in zip(table["row"], table["picture"], strict=True)
    ]
    table["problems"] = [
        [*problems, copies.problems[source]] if source in copies.problems else problems
        for problems, source in zip(table["problems"], sources, strict=True)
    ]
    return table, copies.made


def split_by_image(table: pd.DataFrame, val_ratio: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into train and val by image (seeded); val gets at least one image when asked for."""
    images = pd.Series(table["sha256"].unique())
    if val_ratio <= 0 or len(images) < 2:
        return table, table.iloc[0:0]
    shuffled = images.sample(frac=1.0, random_state=seed).tolist()
    val_count = min(len(shuffled) - 1, max(1, round(len(shuffled) * val_ratio)))
    val_images = set(shuffled[:val_count])
    in_val = table["sha256"].isin(val_images)
    return table[~in_val], table[in_val]


def write_splits(
    out: Path, table: pd.DataFrame, val_ratio: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``table`` (its ``row`` and ``sha256`` columns) by image and write train.jsonl (+ val.jsonl)."""
    train, val = split_by_image(table, val_ratio, seed)
    _write_split(out / TRAIN_FILE, train)
    if val_ratio > 0:
        _write_split(out / VAL_FILE, val)
    else:
        (out / VAL_FILE).unlink(missing_ok=True)
        meta_file(out / VAL_FILE).unlink(missing_ok=True)
    return train, val


def meta_file(split: Path) -> Path:
    """The rows' metadata beside a split, line for line: ``val.jsonl`` -> ``val.meta.jsonl``.

    ms-swift keeps only its own columns of a row, so what an evaluation breaks its verdicts down by
    (the question's kind, the user's prompt, the image's sha256) lives in a file of its own.
    """
    return split.with_name(split.name.removesuffix(".jsonl") + META_SUFFIX)


def _write_split(path: Path, split: pd.DataFrame) -> None:
    """Write a split's rows, then their metadata (``meta`` column, else the prompt; the sha256 and original file)."""
    atomic_write_lines(path, (dumps_row(row) for row in split["row"]))
    metas = split["meta"] if "meta" in split else [{} for _ in range(len(split))]
    prompts = split["prompt"] if "prompt" in split else [None] * len(split)
    sources = split["image_path"] if "image_path" in split else [None] * len(split)
    lines = (
        json.dumps({"kind": KIND_PROMPT, "prompt": prompt, "sha256": sha, "source": source, **meta}, ensure_ascii=False)
        for meta, prompt, sha, source in zip(metas, prompts, split["sha256"], sources, strict=True)
    )
    atomic_write_lines(meta_file(path), lines)


def attach_review(
    report: DatasetReport, out: Path, entries: list[ReviewEntry], review: int | None, seed: int
) -> DatasetReport:
    """Write review.html from ``entries`` when ``review`` rows are asked for (0: remove it; None: leave it)."""
    if review is None:
        return report
    path = write_review(out, entries, review, seed)
    if path is not None:
        report.review_path = str(path.resolve())
        report.review_preview = preview(entries, review, seed)
    return report


def write_stats(out: Path, report: DatasetReport) -> DatasetReport:
    """Write dataset_stats.json (the report) atomically and return the report."""
    atomic_write_text(out / STATS_FILE, json.dumps(report.model_dump(), indent=2, ensure_ascii=False))
    return report


def build_dataset(
    ledger: Ledger,
    out_dir: str | Path,
    *,
    keys: Iterable[str] | None = None,
    val_ratio: float = 0.0,
    seed: int = 42,
    review: int | None = None,
) -> DatasetReport:
    """Write train.jsonl (+ val.jsonl), dataset_stats.json and, with ``review`` rows, review.html; return the report."""
    out = Path(out_dir)
    table = to_rows(answered_table(ledger, keys))
    has_problems = table["problems"].map(bool).astype(bool)  # a boolean mask even when the table is empty
    valid = table[~has_problems].sort_values("updated_at", kind="stable")
    # One answer per (image content, prompt, system): the newest wins, older duplicates go.
    deduped = valid.drop_duplicates(subset=["sha256", "prompt", "system"], keep="last").sort_values(
        ["image_path", "prompt"], kind="stable"
    )
    # Then the picture of each: an image that cannot be copied as the teacher saw it leaves its rows out.
    deduped, copied = with_pictures(out, deduped)
    unpictured = deduped["problems"].map(bool).astype(bool)
    kept = deduped[~unpictured]
    invalid = [
        f"{path}: {'; '.join(problems)}"
        for frame in (table[has_problems], deduped[unpictured])
        for path, problems in zip(frame["image_path"], frame["problems"], strict=True)
    ]
    train, val = write_splits(out, kept, val_ratio, seed)
    train_path = out / TRAIN_FILE
    val_path = out / VAL_FILE
    words = kept["answer"].str.split().str.len() if len(kept) else pd.Series([0])
    report = DatasetReport(
        train_path=str(train_path.resolve()),
        val_path=str(val_path.resolve()) if val_ratio > 0 else None,
        train_rows=len(train),
        val_rows=len(val),
        images=int(kept["sha256"].nunique()),
        prompts=int(kept["prompt"].nunique()),
        dropped_invalid=len(invalid),
        dropped_duplicates=len(valid) - len(deduped),
        answer_words_mean=round(float(words.mean()), 1),
        answer_words_max=int(words.max()),
        invalid_reasons=invalid,
        images_dir=str((out / IMAGES_DIR).resolve()),
        images_copied=copied,
    )
    entries = [
        ReviewEntry(image_path=path, question=prompt, answer=answer, picture=picture)
        for path, prompt, answer, picture in zip(
            kept["image_path"], kept["prompt"], kept["answer"], kept["picture"], strict=True
        )
    ]
    return write_stats(out, attach_review(report, out, entries, review, seed))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file into a list of objects (for tests and tools)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
