"""Score the student against the teacher on validation rows: ROUGE-L between answers, beside the base model.

The predictions come from ``infer_worker`` (ms-swift inference in a child process); everything here is
plain data in, plain data out. ROUGE-L's stock tokenizer keeps only ``[a-z0-9]`` and so scores every
Chinese answer 0; ours splits CJK text into characters and everything else into words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+", re.UNICODE)
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

    def summary(self) -> dict[str, Any]:
        """Headline numbers for the metrics table."""
        return {
            "eval_rows": len(self.rows),
            "student_rougeL": round(self.student_rouge_l, 4),
            "base_rougeL": None if self.base_rouge_l is None else round(self.base_rouge_l, 4),
        }

    def table(self) -> list[dict[str, Any]]:
        """One dict per row, for a Prefect table artifact."""
        table = []
        for index, row in enumerate(self.rows):
            entry: dict[str, Any] = {
                "row": index,
                "image": ", ".join(Path(p).name for p in row.images),
                "prompt": _cut(_last_user_text(row.messages)),
                "teacher": _cut(row.reference),
                "student": _cut(self.student[index]),
                "student_rougeL": round(self.student_scores[index], 4),
            }
            if self.base is not None and self.base_scores is not None:
                entry["base"] = _cut(self.base[index])
                entry["base_rougeL"] = round(self.base_scores[index], 4)
            table.append(entry)
        return table


class MixedScriptTokenizer:
    """Lower-cased words, with each CJK character a token of its own (rouge_score's tokenizer protocol)."""

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into ROUGE tokens."""
        return _TOKEN.findall(text.lower())


def rouge_l_many(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 per pair."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=MixedScriptTokenizer())
    return [float(scorer.score(ref, pred)["rougeL"].fmeasure) for pred, ref in zip(predictions, references, strict=True)]


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
