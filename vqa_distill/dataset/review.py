"""The review page: a seeded sample of rows, each with a thumbnail, its question, answer, score and fate.

One static HTML file in the run folder, with every thumbnail embedded as a small base64 JPEG data URL:
it opens from disk or from an artifact store, needs no network and no script, and can be mailed.
The teacher's answers are not guaranteed to be right; this is where a person checks a sample of them.
Each thumbnail is drawn from the picture the row trains on (the copy of the image as the teacher saw
it, ``pictures.py``), and the original's path is printed beside it, so a person can find the source.
"""

from __future__ import annotations

import base64
import html
import io
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vqa_distill.atomic import atomic_write_text

REVIEW_FILE = "review.html"
THUMBNAIL_SIDE_PX = 192  # longest side of an embedded thumbnail
THUMBNAIL_JPEG_QUALITY = 70  # ~5-10 KB a thumbnail: 50 rows stay well under a megabyte
PREVIEW_ROWS = 5  # rows shown in the Prefect artifact that links to the page
PREVIEW_ANSWER_CHARS = 160

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem} .meta{color:#555;margin-bottom:1rem}
.row{display:flex;gap:1rem;background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem;margin:.6rem 0}
.row.rejected{border-color:#d33;background:#fff5f5}
.row img{width:192px;height:auto;flex:none;object-fit:contain;background:#eee}
.text{flex:1;min-width:0} .q{font-weight:600;margin-bottom:.4rem} .a{white-space:pre-wrap}
.tags{margin-top:.5rem;font-size:.85rem;color:#555} .tag{display:inline-block;margin-right:.6rem}
.score{font-weight:700} .reason{color:#b00;font-weight:600} .path{font-family:monospace;word-break:break-all}
"""


@dataclass(frozen=True)
class ReviewEntry:
    """One question and answer about one image, kept in the dataset or left out (``reason``).

    ``image_path`` is the original file; ``picture`` the copy the teacher's view was saved as, which the
    thumbnail shows (the original only when there is no copy).
    """

    image_path: str
    question: str
    answer: str
    score: int | None = None
    reason: str | None = None
    picture: str | None = None


def sample(entries: Sequence[ReviewEntry], count: int, seed: int) -> list[ReviewEntry]:
    """Return ``count`` entries drawn with ``seed`` (all when fewer), in image then question order."""
    chosen = list(entries) if len(entries) <= count else random.Random(seed).sample(list(entries), count)
    return sorted(chosen, key=lambda e: (e.image_path, e.question))


def thumbnail_url(path: str) -> str | None:
    """Return a small JPEG of the image as a data URL, or None when the file cannot be read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMBNAIL_SIDE_PX, THUMBNAIL_SIDE_PX))  # JPEGs decode at a fraction of size
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((THUMBNAIL_SIDE_PX, THUMBNAIL_SIDE_PX))
    except (OSError, ValueError, UnidentifiedImageError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _entry_html(entry: ReviewEntry, thumbnail: str | None) -> str:
    esc = html.escape
    image = f'<img src="{thumbnail}" alt="{esc(Path(entry.image_path).name)}">' if thumbnail else "<div>(unreadable)</div>"
    tags = [f'<span class="tag path">{esc(entry.image_path)}</span>']
    if entry.score is not None:
        tags.append(f'<span class="tag score">score {entry.score}/5</span>')
    if entry.reason:
        tags.append(f'<span class="tag reason">left out: {esc(entry.reason)}</span>')
    else:
        tags.append('<span class="tag">kept</span>')
    css = "row rejected" if entry.reason else "row"
    return (
        f'<div class="{css}">{image}<div class="text"><div class="q">{esc(entry.question)}</div>'
        f'<div class="a">{esc(entry.answer)}</div><div class="tags">{"".join(tags)}</div></div></div>'
    )


def render(entries: Sequence[ReviewEntry], *, total: int, seed: int) -> str:
    """Return the page for ``entries`` (a sample of ``total`` rows drawn with ``seed``)."""
    thumbnails: dict[str, str | None] = {}
    body = []
    for entry in entries:
        shown = entry.picture or entry.image_path
        if shown not in thumbnails:
            thumbnails[shown] = thumbnail_url(shown)
        body.append(_entry_html(entry, thumbnails[shown]))
    left_out = sum(1 for e in entries if e.reason)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Teacher answers: review</title><style>{_STYLE}</style></head><body>"
        "<h1>Teacher answers: a sample to review</h1>"
        f'<div class="meta">{len(entries)} of {total} rows, drawn with seed {seed}; {left_out} of them left out '
        "(red, with the reason). Check each answer against its picture: the teacher can be wrong.</div>"
        + "".join(body)
        + "</body></html>"
    )


def write_review(out_dir: str | Path, entries: Sequence[ReviewEntry], count: int, seed: int) -> Path | None:
    """Write ``review.html`` with a seeded sample of ``count`` entries; None (and no page) when ``count`` is 0."""
    path = Path(out_dir) / REVIEW_FILE
    if count <= 0:
        path.unlink(missing_ok=True)
        return None
    atomic_write_text(path, render(sample(entries, count, seed), total=len(entries), seed=seed))
    return path


def preview(entries: Sequence[ReviewEntry], count: int, seed: int) -> list[dict[str, Any]]:
    """Return the first rows of the page's sample as plain data, for the artifact that links to it."""
    rows = []
    for entry in sample(entries, count, seed)[:PREVIEW_ROWS]:
        row = asdict(entry)
        if len(row["answer"]) > PREVIEW_ANSWER_CHARS:
            row["answer"] = row["answer"][:PREVIEW_ANSWER_CHARS].rstrip() + "…"
        rows.append(row)
    return rows


def review_markdown(path: str, rows: Sequence[dict[str, Any]]) -> str:
    """Return the ``teacher-review`` artifact: where the page is, and a few of its rows."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Review page",
        f"Open [{path}](file://{path}) in a browser: a sample of rows with their pictures, scores and reasons.",
        "",
        "| image | question | answer | score | left out |",
        "|---|---|---|---:|---|",
    ]
    lines += [
        f"| {cell(Path(r['image_path']).name)} | {cell(r['question'])} | {cell(r['answer'])} | {cell(r['score'])} "
        f"| {cell(r['reason'])} |"
        for r in rows
    ]
    return "\n".join(lines)
