"""Questions mode, built: each image's questions and answers through the quality gates into ms-swift rows.

Per question: a near-duplicate of an earlier question, an unusable answer, a refusal, and (with a judge)
a question that needs no image or a score under ``min_score`` are left out; then, across the dataset in
row order, an answer repeating an earlier kept one. Every row left out goes to rejected.jsonl with its
reason; the counts and the judge's scores make the QualityReport. Rows are single-turn (one per
question) or, with ``conversation``, one multi-turn row per image; the split is by image, as always.
Rows and the review page show each image as the teacher saw it (``pictures.py``); rejected.jsonl names
the original file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vqa_distill.atomic import atomic_write_lines
from vqa_distill.dataset import quality as q
from vqa_distill.dataset.build import (
    TRAIN_FILE,
    VAL_FILE,
    DatasetReport,
    attach_review,
    build_dataset,
    write_splits,
    write_stats,
)
from vqa_distill.dataset.pictures import IMAGES_DIR, Copies, Source, make_copies, teacher_budget
from vqa_distill.dataset.review import ReviewEntry
from vqa_distill.dataset.rows import make_conversation_row, make_row, row_problems
from vqa_distill.dataset.similarity import AnswerIndex
from vqa_distill.secrecy import mask
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, STATUS_UNUSABLE, Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import Judgement, parse_judgement
from vqa_distill.teacher.qa.plan import QAItem, UnitState, is_done, read_unit
from vqa_distill.teacher.qa.questions import QAUnit
from vqa_distill.teacher.run.plan import RunPlan

REJECTED_FILE = "rejected.jsonl"
SHORT_LIST_CLASS = "ShortQuestionList"


@dataclass
class Candidate:
    """One answered question on its way to a row, and why it was left out (``reason`` None: kept)."""

    unit: QAUnit
    item: QAItem
    score: int | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def answer(self) -> str:
        """The answer text ('' when there is none)."""
        return (self.item.answer.answer if self.item.answer else None) or ""

    def rejected_json(self) -> dict[str, Any]:
        """The rejected.jsonl line of this candidate."""
        return {
            "image": self.unit.image_path, "prompt": self.unit.prompt, "question_index": self.item.question.index,
            "question": self.item.question.text, "answer": self.answer or None, "reason": self.reason,
            "detail": self.detail, "score": self.score, "key": self.item.request.key,
        }  # fmt: skip

    def source(self, params: TeacherParams) -> Source:
        """The image this candidate is about, as the teacher was sent it when asked the question."""
        budget = teacher_budget(self.item.request.model, params.max_pixels)
        return Source(self.unit.image_path, self.unit.sha256, budget)

    def review_entry(self, picture: str | None) -> ReviewEntry:
        """This candidate as a row of the review page, its thumbnail drawn from ``picture``."""
        reason = f"{self.reason}: {self.detail}" if self.reason and self.detail else self.reason
        question = self.item.question.text
        return ReviewEntry(self.unit.image_path, question, self.answer, self.score, reason, picture)


def verdict_of(item: QAItem) -> Judgement | None:
    """Return the judge's verdict on an item, when it has a usable one."""
    record = item.judgement
    if record is None or record.status != STATUS_ANSWERED:
        return None
    verdict = parse_judgement(record.answer or "")
    return verdict if isinstance(verdict, Judgement) else None


def gate(candidate: Candidate, params: TeacherParams) -> None:
    """Apply the per-question gates, in order, setting the first reason that leaves the candidate out."""
    item = candidate.item
    if item.repeats is not None:
        earlier, similarity = item.repeats
        candidate.reason, candidate.detail = (
            q.REASON_DUPLICATE_QUESTION,
            f"repeats #{earlier} (similarity {similarity})",
        )
        return
    record = item.answer
    if record is not None and record.status == STATUS_UNUSABLE:
        candidate.reason, candidate.detail = q.REASON_UNUSABLE, record.error_message or ""
        return
    phrase = q.refusal_in(candidate.answer)
    if phrase:
        candidate.reason, candidate.detail = q.REASON_REFUSAL, f"opens with {phrase!r}"
        return
    if params.judge_model is None:
        return
    verdict = verdict_of(item)
    if verdict is None:
        if params.min_score is not None:
            candidate.reason = q.REASON_NOT_JUDGED
        return
    candidate.score = verdict.score
    if not verdict.needs_image:
        candidate.reason, candidate.detail = q.REASON_IMAGELESS, verdict.reason
    elif params.min_score is not None and verdict.score < params.min_score:
        candidate.reason = q.REASON_LOW_SCORE
        candidate.detail = f"{verdict.score} < --min-score {params.min_score}: {verdict.reason}"


def collect(
    states: list[UnitState], params: TeacherParams, report: q.QualityReport
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Turn unit states into gated candidates; return them and the rejected question sets."""
    candidates: list[Candidate] = []
    lost_sets: list[dict[str, Any]] = []
    for state in states:
        record = state.questions
        if not is_done(record):
            report.no_questions += 1
            continue
        assert record is not None
        if record.status != STATUS_ANSWERED:
            report.reject(q.REASON_QUESTIONS_UNUSABLE)
            lost_sets.append({
                "image": state.unit.image_path, "prompt": state.unit.prompt, "question_index": None, "question": None,
                "answer": record.answer, "reason": q.REASON_QUESTIONS_UNUSABLE, "detail": record.error_message or "",
                "score": None, "key": record.key,
            })  # fmt: skip
            continue
        report.short_question_sets += record.error_class == SHORT_LIST_CLASS
        for item in state.items:
            if item.repeats is None and not is_done(item.answer):
                report.unanswered += 1
                continue
            candidate = Candidate(state.unit, item)
            gate(candidate, params)
            if candidate.score is not None:
                report.score(candidate.score)
            candidates.append(candidate)
    return candidates, lost_sets


def drop_duplicate_answers(candidates: list[Candidate]) -> None:
    """Leave out, in row order, every answer that repeats an earlier kept one (exactly or nearly)."""
    alive = [c for c in candidates if c.reason is None]
    index = AnswerIndex([c.answer for c in alive])
    for position, candidate in enumerate(alive):
        match = index.check_and_add(position)
        if match is not None:
            first = alive[match.of]
            candidate.reason = q.REASON_DUPLICATE_ANSWER
            candidate.detail = (
                f"{'same as' if match.similarity == 1.0 else f'{match.similarity} alike with'} "
                f"{first.unit.rel_path} #{first.item.question.index}"
            )


def rows_of(kept: list[Candidate], params: TeacherParams, copies: Copies) -> pd.DataFrame:
    """Return the rows (one per question, or one conversation per image), each pointing at its image's copy,
    with the original's path and the rows' problems (an image without a copy is one)."""
    groups: list[list[Candidate]]
    if params.conversation:
        by_image: dict[str, list[Candidate]] = {}
        for candidate in kept:
            by_image.setdefault(candidate.unit.sha256, []).append(candidate)
        groups = list(by_image.values())
    else:
        groups = [[candidate] for candidate in kept]
    records = []
    for group in groups:
        first, source = group[0], group[0].source(params)
        picture = copies.paths.get(source, first.unit.image_path)
        if params.conversation:
            turns = [(c.item.question.text, c.answer) for c in group]
            row = make_conversation_row(image_path=picture, turns=turns, system=params.system)
        else:
            question = first.item.question.text
            row = make_row(image_path=picture, prompt=question, answer=first.answer, system=params.system)
        problem = copies.problems.get(source)
        meta = {
            "kind": group[-1].item.question.kind,
            "prompt": first.unit.prompt,
        }  # a conversation's last turn
        records.append({"sha256": first.unit.sha256, "image_path": first.unit.image_path, "row": row, "meta": meta,
                        "problems": row_problems(row) + ([problem] if problem else [])})  # fmt: skip
    return pd.DataFrame(records, columns=["sha256", "image_path", "row", "meta", "problems"])


def build_qa_dataset(ledger: Ledger, units: list[QAUnit], params: TeacherParams) -> DatasetReport:
    """Gate every answered question of ``units``, write the rows, rejected.jsonl, stats and review page."""
    out = Path(params.out)
    report = q.QualityReport(min_score=params.min_score, judged=params.judge_model is not None)
    candidates, lost_sets = collect([read_unit(unit, params, ledger) for unit in units], params, report)
    drop_duplicate_answers(candidates)
    kept = [c for c in candidates if c.reason is None]
    for candidate in candidates:
        if candidate.reason is not None:
            report.reject(candidate.reason)
    report.kept = len(kept)
    rejected_path = out / REJECTED_FILE
    lines = [*lost_sets, *(c.rejected_json() for c in candidates if c.reason is not None)]
    atomic_write_lines(rejected_path, (json.dumps(line, ensure_ascii=False) for line in lines))
    # Kept rows train on their image's copy; with a review page, left-out rows' images get one for it too.
    copies = make_copies(out, (c.source(params) for c in (candidates if params.review else kept)))
    table = rows_of(kept, params, copies)
    has_problems = table["problems"].map(bool).astype(bool)
    invalid, valid = table[has_problems], table[~has_problems]
    train, val = write_splits(out, valid, params.val_ratio, params.seed)
    words = pd.Series([len(c.answer.split()) for c in kept] or [0])
    dataset = DatasetReport(
        train_path=str((out / TRAIN_FILE).resolve()),
        val_path=str((out / VAL_FILE).resolve()) if params.val_ratio > 0 else None,
        train_rows=len(train),
        val_rows=len(val),
        images=int(valid["sha256"].nunique()),
        prompts=len({c.item.question.text for c in kept}),
        dropped_invalid=len(invalid),
        dropped_duplicates=report.rejected.get(q.REASON_DUPLICATE_ANSWER, 0),
        answer_words_mean=round(float(words.mean()), 1),
        answer_words_max=int(words.max()),
        invalid_reasons=[
            f"{p}: {'; '.join(r)}" for p, r in zip(invalid["image_path"], invalid["problems"], strict=True)
        ],
        quality=report,
        rejected_path=str(rejected_path.resolve()),
        images_dir=str((out / IMAGES_DIR).resolve()),
        images_copied=copies.made,
    )
    entries = [
        c.review_entry(copies.paths.get(c.source(params))) for c in candidates if c.item.answer is not None
    ]
    return write_stats(out, attach_review(dataset, out, entries, params.review, params.seed))


def build_run_dataset(ledger: Ledger, plan: RunPlan, params: TeacherParams) -> DatasetReport:
    """Build a generate run's dataset: through the quality gates in questions mode, else one row per prompt.

    The report names the teacher (model and endpoint) so that an evaluation of the dataset can ask
    the same model to judge by default.
    """
    if plan.staged is not None:
        report = build_qa_dataset(ledger, plan.staged.units, params)
    else:
        report = build_dataset(
            ledger,
            params.out,
            keys=plan.keys,
            val_ratio=params.val_ratio,
            seed=params.seed,
            review=params.review,
        )
    base_url = mask(params.base_url, urls=[params.base_url]) if params.base_url else None
    return write_stats(
        Path(params.out),
        report.model_copy(update={"teacher_model": params.model, "teacher_base_url": base_url}),
    )
