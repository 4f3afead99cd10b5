"""Check every dataset row before any GPU time is spent, and name each bad one by file, line and reason.

ms-swift drops rows silently: a second row format in a file, a row longer than ``--max_length``
(``truncation_strategy=delete``), and it fails late, mid-epoch, on a missing or broken image. Here every
row is parsed, checked for structure (``swift_format.row_problems``), its images opened and decoded,
and encoded with the model's real template and processor to count its tokens, images included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqa_distill.dataset.rows import dumps_row, row_format, row_problems
from vqa_distill.errors import DatasetError, ModelNotFoundError
from vqa_distill.student.model_resolve import ResolvedModel

EXPECTED_FORMAT = "messages"
MAX_REPORTED = 20  # issues listed in an error message; the report keeps all of them

# A counter takes a row (images already decoded to PIL) and returns its token count.
TokenCounter = Callable[[dict[str, Any]], int]


@dataclass(frozen=True)
class RowIssue:
    """One row that must not reach training."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class FileReport:
    """The outcome for one JSONL file: which lines are good, which are not and why."""

    path: str
    good_lines: list[int] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    max_tokens: int = 0

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
    return PreflightReport([check_file(path, max_length=max_length, count_tokens=count_tokens) for path in paths])


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
    max_tokens = 0
    for number, text in lines:
        reasons, tokens = _check_line(text, max_length=max_length, count_tokens=count_tokens)
        issues.extend(RowIssue(path, number, reason) for reason in reasons)
        if not reasons:
            good.append(number)
        max_tokens = max(max_tokens, tokens)
    return FileReport(path, good, issues, max_tokens)


def _numbered_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for every non-blank line."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                yield number, text


def _check_line(text: str, *, max_length: int, count_tokens: TokenCounter | None) -> tuple[list[str], int]:
    """Return (reasons this line is bad, its token count or 0)."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"invalid JSON ({exc.msg} at column {exc.colno})"], 0
    found = row_format(row)
    if found != EXPECTED_FORMAT:
        # ms-swift fixes one format per file and silently drops rows of any other.
        return [f"row is in {found!r} format, not {EXPECTED_FORMAT!r} (ms-swift would silently drop it)"], 0
    reasons = row_problems(row)
    images: list[Any] = []
    for index, image_path in enumerate(row.get("images") or []):
        image, reason = _open_image(image_path)
        if reason:
            reasons.append(f"image {index} {reason}")
        images.append(image)
    if reasons or count_tokens is None:
        return reasons, 0
    tokens = count_tokens({**row, "images": images})
    if tokens > max_length:
        return [f"{tokens} tokens > --max_length {max_length} (ms-swift would silently delete it)"], tokens
    return [], tokens


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


def load_token_counter(model: ResolvedModel, *, system: str, max_pixels: int | None) -> TokenCounter:
    """Build a counter from the model's own processor and ms-swift template (no weights are loaded)."""
    try:
        from swift import get_processor, get_template

        processor = get_processor(model.model, model_type=model.model_type)
        template = get_template(
            processor,
            default_system=system,
            template_type=model.template,
            max_length=None,
            truncation_strategy="raise",
            max_pixels=max_pixels,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot load the processor of {model.model!r}: {exc}") from exc
    template.max_length = None  # count, do not truncate or raise
    template.set_mode("train")

    def count(row: dict[str, Any]) -> int:
        return len(template.encode(row)["input_ids"])

    return count


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
    """What training reads after the preflight: the files (or cleaned copies) and the report."""

    report: PreflightReport
    dataset: list[str]
    val_dataset: list[str]
    dropped: int


def run_preflight(
    dataset: Sequence[str],
    val_dataset: Sequence[str],
    *,
    max_length: int,
    count_tokens: TokenCounter | None,
    skip_bad_rows: bool,
    clean_dir: Path,
) -> PreflightResult:
    """Check all files; refuse with DatasetError on any bad row, or with ``skip_bad_rows`` write cleaned
    copies under ``clean_dir`` and return them instead."""
    paths = [*dataset, *val_dataset]
    report = check_files(paths, max_length=max_length, count_tokens=count_tokens)
    if report.ok:
        return PreflightResult(report, list(dataset), list(val_dataset), 0)
    unreadable = [i for i in report.issues if i.line == 0]
    if not skip_bad_rows or unreadable:
        hint = "" if unreadable else "\nFix these rows, or pass --skip-bad-rows to drop them (they are counted)."
        raise DatasetError(report.describe() + hint)
    cleaned: list[str] = []
    for index, file_report in enumerate(report.files):
        if not file_report.issues:
            cleaned.append(file_report.path)
            continue
        out = clean_dir / f"{index:02d}-{Path(file_report.path).name}"
        if write_clean_copy(file_report, out) == 0:
            raise DatasetError(f"every row of {file_report.path} is bad:\n" + report.describe())
        cleaned.append(str(out))
    return PreflightResult(report, cleaned[: len(dataset)], cleaned[len(dataset) :], report.bad_rows)
