"""Score the student against the teacher on validation rows: ROUGE-L between answers, beside the base model.

The predictions come from ``infer_worker`` (ms-swift inference in a child process); everything here is
plain data in, plain data out; the measures themselves (ROUGE-L on mixed-script tokens, what makes an
answer degenerate) live in ``metrics``.

A score of 0 can mean "wrong answers" or "no answers at all": an untrained model often emits only
newlines, or one token over and over. Such answers are flagged as degenerate, per row and in warning
lines, so that a table of zeros is read as "this comparison says nothing" rather than as a result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from vqa_distill.student.metrics import degenerate_reason, rouge_l_many

TABLE_TEXT_CHARS = 200  # answers are cut to this length in the artifact table


@dataclass(frozen=True)
class EvalRow:
    """One validation question: the prompt messages, its images and the teacher's answer."""

    messages: list[dict[str, str]]
    images: list[str]
    reference: str

    def to_json(self) -> dict[str, Any]:
        """The row as the inference worker reads it."""
        return {"messages": self.messages, "images": self.images, "reference": self.reference}


@dataclass(frozen=True)
class EvalReport:
    """Per-row answers and scores; ``base_*`` are None when the base model was not scored."""

    rows: list[EvalRow]
    student: list[str]
    student_scores: list[float]
    base: list[str] | None = None
    base_scores: list[float] | None = None

    @property
    def student_rouge_l(self) -> float:
        """Mean ROUGE-L F1 of the student against the teacher."""
        return fmean(self.student_scores) if self.student_scores else 0.0

    @property
    def base_rouge_l(self) -> float | None:
        """Mean ROUGE-L F1 of the base model against the teacher."""
        if self.base_scores is None:
            return None
        return fmean(self.base_scores) if self.base_scores else 0.0

    @property
    def student_degenerate(self) -> list[str | None]:
        """Per row, why the student's answer is degenerate (see ``degenerate_reason``), or None."""
        return [degenerate_reason(answer) for answer in self.student]

    @property
    def base_degenerate(self) -> list[str | None] | None:
        """Per row, why the base model's answer is degenerate, or None; None when the base was not scored."""
        return None if self.base is None else [degenerate_reason(answer) for answer in self.base]

    def warnings(self) -> list[str]:
        """One line per model whose answers are degenerate, saying how many and what that means for its score."""
        flagged = [("student", self.student_degenerate)]
        if self.base_degenerate is not None:
            flagged.insert(0, ("base", self.base_degenerate))
        lines = []
        for name, reasons in flagged:
            bad = [r for r in reasons if r is not None]
            if not bad:
                continue
            kinds = " or ".join(sorted(set(bad)))
            meaning = "its ROUGE-L says nothing" if len(bad) == len(reasons) else "its ROUGE-L on those rows says nothing"
            lines.append(f"{name} answers are degenerate ({len(bad)}/{len(reasons)} {kinds}): {meaning}")
        return lines

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the metrics table."""
        base_degenerate = self.base_degenerate
        return {
            "eval_rows": len(self.rows),
            "student_rougeL": round(self.student_rouge_l, 4),
            "base_rougeL": None if self.base_rouge_l is None else round(self.base_rouge_l, 4),
            "student_degenerate": sum(r is not None for r in self.student_degenerate),
            "base_degenerate": None if base_degenerate is None else sum(r is not None for r in base_degenerate),
        }

    def table(self) -> list[dict[str, Any]]:
        """One dict per row, for a Prefect table artifact."""
        table = []
        student_degenerate, base_degenerate = self.student_degenerate, self.base_degenerate
        for index, row in enumerate(self.rows):
            entry: dict[str, Any] = {
                "row": index,
                "image": ", ".join(Path(p).name for p in row.images),
                "prompt": _cut(_last_user_text(row.messages)),
                "teacher": _cut(row.reference),
                "student": _cut(self.student[index]),
                "student_rougeL": round(self.student_scores[index], 4),
                "student_degenerate": student_degenerate[index] or "",
            }
            if self.base is not None and self.base_scores is not None and base_degenerate is not None:
                entry["base"] = _cut(self.base[index])
                entry["base_rougeL"] = round(self.base_scores[index], 4)
                entry["base_degenerate"] = base_degenerate[index] or ""
            table.append(entry)
        return table


def eval_rows_from_files(paths: Iterable[Path], *, system: str, limit: int) -> list[EvalRow]:
    """The first ``limit`` rows of ``paths`` that end with an assistant answer, as prompts + references.

    Rows without a system message get ``system``, as ms-swift's ``--system`` gave them in training.
    """
    rows: list[EvalRow] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if len(rows) >= limit:
                return rows
            if not line.strip():
                continue
            row = eval_row(json.loads(line), system=system)
            if row is not None:
                rows.append(row)
    return rows


def eval_row(row: dict[str, Any], *, system: str) -> EvalRow | None:
    """Split a training row into prompt and teacher answer; None when it has no final answer."""
    # ms-swift's own val_dataset.jsonl stores each message as a JSON string, and images as
    # {"path": ..., "bytes": ...}; the teacher's files hold plain objects and paths.
    messages = [json.loads(m) if isinstance(m, str) else m for m in row.get("messages") or []]
    if not messages or messages[-1].get("role") != "assistant":
        return None
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    if prompt and prompt[0]["role"] != "system" and system:
        prompt.insert(0, {"role": "system", "content": system})
    images = [i["path"] if isinstance(i, dict) else i for i in row.get("images") or []]
    return EvalRow(prompt, [str(i) for i in images], str(messages[-1]["content"]))


def write_eval_rows(rows: Sequence[EvalRow], path: Path) -> Path:
    """Write the rows the inference worker answers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_eval_rows(path: Path) -> list[EvalRow]:
    """Read the rows ``write_eval_rows`` wrote."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            rows.append(EvalRow(data["messages"], data["images"], data["reference"]))
    return rows


def read_predictions(path: Path) -> dict[str, list[str]]:
    """The worker's output: model name -> answers in row order."""
    answers: dict[str, dict[int, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            answers.setdefault(record["model"], {})[int(record["index"])] = record["response"]
    return {name: [by_index[i] for i in sorted(by_index)] for name, by_index in answers.items()}


def score(rows: Sequence[EvalRow], student: Sequence[str], base: Sequence[str] | None) -> EvalReport:
    """Score the student's (and the base model's) answers against the teacher's."""
    references = [row.reference for row in rows]
    return EvalReport(
        rows=list(rows),
        student=list(student),
        student_scores=rouge_l_many(student, references),
        base=None if base is None else list(base),
        base_scores=None if base is None else rouge_l_many(base, references),
    )


def _last_user_text(messages: Sequence[dict[str, str]]) -> str:
    """The question asked, without its ``<image>`` tags."""
    user = [m["content"] for m in messages if m["role"] == "user"]
    return user[-1].replace("<image>", "").strip() if user else ""


def _cut(text: str) -> str:
    """Shorten long answers for the table."""
    return text if len(text) <= TABLE_TEXT_CHARS else text[: TABLE_TEXT_CHARS - 1] + "…"
