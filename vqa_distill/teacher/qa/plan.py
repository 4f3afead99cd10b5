"""Questions mode, planned: what each image x prompt already has in the ledger, and what is left to ask.

One ``UnitState`` per image x prompt: its question set, then one ``QAItem`` per question with the
answer and the judgement found so far. The same reading serves the plan (before the run: a unit with
nothing left to ask gets no task run) and the dataset (after it). Questions nearly repeating an
earlier one of the same list are never answered: they would cost a call and be left out anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vqa_distill.dataset.quality import refusal_in
from vqa_distill.dataset.similarity import near_duplicate_questions
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.discovery import ImageRef
from vqa_distill.teacher.ledger.records import DONE_STATUSES, STATUS_ANSWERED, Ledger, TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import judge_request
from vqa_distill.teacher.qa.questions import (
    QAUnit,
    Question,
    answer_request,
    parse_questions,
    question_request,
)


def is_done(record: TeacherRecord | None) -> bool:
    """Return whether a record is final (answered or unusable): never asked again."""
    return record is not None and record.status in DONE_STATUSES


def judged_answer(record: TeacherRecord | None) -> str | None:
    """Return the answer a judge should score: usable and not a refusal (judging those pays for nothing)."""
    if record is None or record.status != STATUS_ANSWERED or not record.answer:
        return None
    return None if refusal_in(record.answer) else record.answer


@dataclass
class QAItem:
    """One question of a unit, its answer request and what the ledger holds for it."""

    question: Question
    request: TeacherRequest
    repeats: tuple[int, float] | None = None  # (index of the earlier question, similarity): not asked
    answer: TeacherRecord | None = None
    judge_request: TeacherRequest | None = None
    judgement: TeacherRecord | None = None

    @property
    def label(self) -> str:
        """Return ``<rel path> #k``: how task runs about this question are named."""
        return f"{self.request.rel_path} #{self.question.index}"


@dataclass
class UnitState:
    """One image x prompt: its question set request and record, and its questions' items."""

    unit: QAUnit
    question_request: TeacherRequest
    questions: TeacherRecord | None
    items: list[QAItem] = field(default_factory=list)

    def requests(self) -> list[TeacherRequest]:
        """Return every request known for this unit (question set, answers, judgements)."""
        known = [self.question_request]
        for item in self.items:
            if item.repeats is None:
                known.append(item.request)
            if item.judge_request is not None:
                known.append(item.judge_request)
        return known

    def has_work(self) -> bool:
        """Return whether any request of this unit is still to be asked."""
        if not is_done(self.questions):
            return True
        return any(
            item.repeats is None
            and (not is_done(item.answer) or (item.judge_request is not None and not is_done(item.judgement)))
            for item in self.items
        )


def read_judgement(item: QAItem, unit: QAUnit, params: TeacherParams, ledger: Ledger) -> None:
    """Fill in the item's judge request and judgement when a judge is set and its answer is worth judging."""
    answer = judged_answer(item.answer)
    if params.judge_model is None or answer is None:
        return
    item.judge_request = judge_request(unit, item.question.text, answer, params)
    item.judgement = ledger.get(item.judge_request.key)


def read_items(unit: QAUnit, questions: TeacherRecord, params: TeacherParams, ledger: Ledger) -> list[QAItem]:
    """Return the items of a question set answered with at least one question, filled from the ledger."""
    if questions.status != STATUS_ANSWERED:
        return []
    parsed = parse_questions(questions.answer or "", params.questions or 1).questions
    repeats = near_duplicate_questions([q.text for q in parsed])
    items: list[QAItem] = []
    for position, question in enumerate(parsed):
        item = QAItem(question, answer_request(unit, question.text, params))
        if position in repeats:
            earlier, similarity = repeats[position]
            item.repeats = (parsed[earlier].index, similarity)
        else:
            item.answer = ledger.get(item.request.key)
            read_judgement(item, unit, params, ledger)
        items.append(item)
    return items


def read_unit(unit: QAUnit, params: TeacherParams, ledger: Ledger) -> UnitState:
    """Return what the ledger holds for one image x prompt."""
    request = question_request(unit, params)
    record = ledger.get(request.key)
    state = UnitState(unit, request, record)
    if record is not None and is_done(record):
        state.items = read_items(unit, record, params, ledger)
    return state


def units_of(images: Iterable[ImageRef], prompts: list[str]) -> list[QAUnit]:
    """Return one unit per image x prompt, in folder then prompt order."""
    return [QAUnit(ref.path, ref.rel_path, ref.sha256, prompt) for ref in images for prompt in prompts]


@dataclass
class QAPlan:
    """Every unit of the run, those with work left, every request known now and how many are done."""

    units: list[QAUnit]
    jobs: list[UnitState]
    requests: list[TeacherRequest]
    already_answered: int


def plan_questions(
    images: list[ImageRef], prompts: list[str], params: TeacherParams, ledger: Ledger, only_keys: set[str] | None
) -> QAPlan:
    """Read every unit from the ledger; keep as jobs those with work left (and, with ``only_keys``, named)."""
    return plan_units(units_of(images, prompts), params, ledger, only_keys)


def plan_units(units: list[QAUnit], params: TeacherParams, ledger: Ledger, only_keys: set[str] | None = None) -> QAPlan:
    """Plan given units, each with its own prompt (the distil loop's targeted questions), like a run's."""
    jobs: list[UnitState] = []
    requests: list[TeacherRequest] = []
    done_keys = ledger.done_keys()
    already = 0
    for unit in units:
        state = read_unit(unit, params, ledger)
        known = state.requests()
        requests += known
        already += sum(1 for request in known if request.key in done_keys)
        selected = only_keys is None or any(request.key in only_keys for request in known)
        if selected and state.has_work():
            jobs.append(state)
    return QAPlan(units=units, jobs=jobs, requests=requests, already_answered=already)
