"""Check every dataset row before any GPU time is spent, and name each bad one by file, line and reason.

ms-swift drops rows silently: a second row format in a file, a row longer than ``--max_length``
(``truncation_strategy=delete``), and it fails late, mid-epoch, on a missing or broken image. Here every
row is parsed, checked for structure (``swift_format.row_problems``), its images opened and decoded,
and encoded with the model's real template and processor to count its tokens, images included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqa_distill.dataset.rows import dumps_row, row_format, row_problems
from vqa_distill.errors import DatasetError
from vqa_distill.student.drop_share import DEFAULT_MAX_DROP_SHARE, DropShare, SwiftDataFlags, refusal_text
from vqa_distill.student.pixels import PixelBudget, fitting_max_pixels
from vqa_distill.student.token_count import TokenCount, TokenCounter

EXPECTED_FORMAT = "messages"
MAX_REPORTED = 20  # issues listed in an error message; the report keeps all of them


@dataclass(frozen=True)
class RowIssue:
    """One row that must not reach training."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class LongRow:
    """A row over ``--max_length``: what its tokens are made of, to work out a max_pixels that would fit it."""

    line: int
    tokens: int
    image_tokens: int
    image_sizes: tuple[tuple[int, int], ...]  # (width, height) as stored; empty when an image is a URL

    @property
    def text_tokens(self) -> int:
        """Tokens no pixel budget can shrink: text, template and image delimiters."""
        return self.tokens - self.image_tokens


@dataclass(frozen=True)
class FileReport:
    """The outcome for one JSONL file: which lines are good, which are not and why."""

    path: str
    good_lines: list[int] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    max_tokens: int = 0
    too_long: list[LongRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows read (blank lines are not rows)."""
        return len(self.good_lines) + len({issue.line for issue in self.issues})


@dataclass(frozen=True)
class PreflightReport:
    """All files of one run; ``ok`` when no row has an issue."""

    files: list[FileReport]

    @property
    def issues(self) -> list[RowIssue]:
        """Every issue of every file, in file then line order."""
        return [issue for report in self.files for issue in report.issues]

    @property
    def bad_rows(self) -> int:
        """Rows with at least one issue."""
        return sum(report.rows - len(report.good_lines) for report in self.files)

    @property
    def total_rows(self) -> int:
        """Rows read across all files."""
        return sum(report.rows for report in self.files)

    @property
    def too_long(self) -> list[LongRow]:
        """Every row over ``--max_length``, in file then line order."""
        return [row for report in self.files for row in report.too_long]

    @property
    def ok(self) -> bool:
        """True when every row can be trained on."""
        return not self.issues

    def describe(self, limit: int = MAX_REPORTED) -> str:
        """A human summary: counts, then the first ``limit`` issues."""
        lines = [f"{self.bad_rows} of {self.total_rows} row(s) cannot be trained on:"]
        lines += [f"  {issue}" for issue in self.issues[:limit]]
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more issue(s)")
        return "\n".join(lines)


def check_files(
    paths: Sequence[str], *, max_length: int, count_tokens: TokenCounter | None = None
) -> PreflightReport:
    """Check every row of every file; ``count_tokens`` None skips the length check (structure and images only)."""
    return PreflightReport(
        [check_file(path, max_length=max_length, count_tokens=count_tokens) for path in paths]
    )


def check_file(path: str, *, max_length: int, count_tokens: TokenCounter | None = None) -> FileReport:
    """Check one JSONL file row by row; a missing or empty file is one issue at line 0."""
    try:
        lines = list(_numbered_lines(path))
    except OSError as exc:
        return FileReport(path, issues=[RowIssue(path, 0, f"cannot read file: {exc.strerror or exc}")])
    if not lines:
        return FileReport(path, issues=[RowIssue(path, 0, "file has no rows")])
    good: list[int] = []
    issues: list[RowIssue] = []
    too_long: list[LongRow] = []
    max_tokens = 0
    for number, text in lines:
        checked = _check_line(text, number, max_length=max_length, count_tokens=count_tokens)
        issues.extend(RowIssue(path, number, reason) for reason in checked.reasons)
        if not checked.reasons:
            good.append(number)
        if checked.too_long is not None:
            too_long.append(checked.too_long)
        max_tokens = max(max_tokens, checked.tokens)
    return FileReport(path, good, issues, max_tokens, too_long)


def _numbered_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for every non-blank line."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                yield number, text


@dataclass(frozen=True)
class _LineResult:
    """One line's outcome: why it is bad (empty: good), its token count (0: not counted), and, when it is
    only too long, what it is made of."""

    reasons: list[str]
    tokens: int = 0
    too_long: LongRow | None = None


def _check_line(text: str, number: int, *, max_length: int, count_tokens: TokenCounter | None) -> _LineResult:
    """Check one line: JSON, format, structure, images, then its length with the real template."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return _LineResult([f"invalid JSON ({exc.msg} at column {exc.colno})"])
    found = row_format(row)
    if found != EXPECTED_FORMAT:
        # ms-swift fixes one format per file and silently drops rows of any other.
        return _LineResult(
            [f"row is in {found!r} format, not {EXPECTED_FORMAT!r} (ms-swift would silently drop it)"]
        )
    reasons = row_problems(row)
    images: list[Any] = []
    for index, image_path in enumerate(row.get("images") or []):
        image, reason = _open_image(image_path)
        if reason:
            reasons.append(f"image {index} {reason}")
        images.append(image)
    if reasons or count_tokens is None:
        return _LineResult(reasons)
    counted = count_tokens({**row, "images": images})
    count = counted if isinstance(counted, TokenCount) else TokenCount(int(counted))
    if count.total <= max_length:
        return _LineResult([], count.total)
    sizes = tuple(image.size for image in images if not isinstance(image, str))
    long_row = LongRow(number, count.total, count.image, sizes if len(sizes) == len(images) else ())
    reason = f"{count.total} tokens > --max_length {max_length} (ms-swift would silently delete it)"
    return _LineResult([reason], count.total, long_row)


def resolve_image_path(path: str) -> str:
    """Resolve a row's image path the way ms-swift does: as given, else under ``ROOT_IMAGE_DIR``."""
    if os.path.exists(path):
        return os.path.abspath(path)
    root = os.environ.get("ROOT_IMAGE_DIR")
    return os.path.abspath(os.path.expanduser(os.path.join(root, path) if root else path))


def _open_image(path: Any) -> tuple[Any, str]:
    """Decode one image fully; returns (RGB image or the URL, reason it is unusable or '')."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(path, str):
        return None, "is not a path string"
    if path.startswith(("http://", "https://")):
        return path, ""  # fetched by ms-swift at training time; nothing to check offline
    resolved = resolve_image_path(path)
    if not os.path.isfile(resolved):
        return None, f"not found: {path}"
    try:
        with Image.open(resolved) as image:
            return image.convert("RGB"), ""
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return None, f"cannot be decoded ({type(exc).__name__}): {path}"


def max_pixels_hint(report: PreflightReport, *, max_length: int, pixels: PixelBudget | None) -> str:
    """For rows over ``max_length``: a ``--max_pixels`` value under which all of them would fit, worked out
    from each row's text tokens and image sizes; '' when no pixel budget can make any of them fit."""
    if pixels is None or pixels.rule is None:
        return ""
    fitting: list[int] = []
    unfixable = 0  # rows too long at any max_pixels: their text alone leaves too little room
    for row in report.too_long:
        if not row.image_tokens or not row.image_sizes:
            continue  # no image share known (a URL image, or a template without image tokens)
        value = fitting_max_pixels(row.image_sizes, max_length - row.text_tokens, pixels.rule)
        if value is None:
            unfixable += 1
        elif pixels.max_pixels is None or value < pixels.max_pixels:
            fitting.append(value)
    if not fitting:
        return ""
    hint = f"--max_pixels {min(fitting)} (their images then fit in --max_length {max_length})"
    if unfixable:
        hint += f"; {unfixable} row(s) would stay too long at any --max_pixels: raise --max_length for them"
    return hint


def write_clean_copy(report: FileReport, out_path: Path) -> int:
    """Write only ``report``'s good lines to ``out_path``; returns the number of rows written."""
    good = set(report.good_lines)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out_path.open("w", encoding="utf-8") as out:
        for number, text in _numbered_lines(report.path):
            if number in good:
                out.write(dumps_row(json.loads(text)) + "\n")
                written += 1
    return written


@dataclass(frozen=True)
class PreflightResult:
    """What training reads after the preflight: the files (or cleaned copies), the report, the share."""

    report: PreflightReport
    dataset: list[str]
    val_dataset: list[str]
    dropped: int
    share: DropShare
    issues_file: str = ""  # every issue, one a line, when rows were dropped


def run_preflight(
    dataset: Sequence[str],
    val_dataset: Sequence[str],
    *,
    max_length: int,
    count_tokens: TokenCounter | None,
    skip_bad_rows: bool,
    clean_dir: Path,
    pixels: PixelBudget | None = None,
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE,
    flags: SwiftDataFlags | None = None,
) -> PreflightResult:
    """Check all files; refuse with DatasetError on any bad row, or with ``skip_bad_rows`` (and at most
    ``max_drop_share`` of the rows bad) return cleaned copies written under ``clean_dir``. A refusal says
    the ``pixels`` budget, a ``--max_pixels`` that fits, and what ms-swift (``flags``) would do instead."""
    paths = [*dataset, *val_dataset]
    report = check_files(paths, max_length=max_length, count_tokens=count_tokens)
    too_long, flags = len(report.too_long), flags or SwiftDataFlags()
    share = DropShare(report.total_rows, too_long, report.bad_rows - too_long, max_length, flags)
    if report.ok:
        return PreflightResult(report, list(dataset), list(val_dataset), 0, share)
    counted = f"Counted with {pixels.describe()}." if pixels is not None and report.too_long else ""
    if any(issue.line == 0 for issue in report.issues):  # a file unread: no share, nothing to skip
        raise DatasetError("\n".join(filter(None, [report.describe(), counted])))
    if not skip_bad_rows or share.over(max_drop_share):
        fit = max_pixels_hint(report, max_length=max_length, pixels=pixels)
        raise DatasetError(
            f"{report.describe()}\n{refusal_text(share, max_drop_share, fit=fit, counted=counted)}"
        )
    cleaned: list[str] = []
    for index, file_report in enumerate(report.files):
        if not file_report.issues:
            cleaned.append(file_report.path)
            continue
        out = clean_dir / f"{index:02d}-{Path(file_report.path).name}"
        if write_clean_copy(file_report, out) == 0:
            raise DatasetError(f"every row of {file_report.path} is bad:\n" + report.describe())
        cleaned.append(str(out))
    listed = clean_dir / "issues.txt"
    listed.write_text("".join(f"{issue}\n" for issue in report.issues), encoding="utf-8")
    return PreflightResult(
        report, cleaned[: len(dataset)], cleaned[len(dataset) :], report.bad_rows, share, str(listed)
    )
