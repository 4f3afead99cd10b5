"""Targeted questions (as in LLM2LLM): where the judge ranked the student below the teacher, ask more of that kind.

A training item the student lost becomes a new question set about the same image, of the same kind,
told which question was missed. A held-out item the student lost only names its kind: the new
questions are asked about training images, so nothing of the held-out set reaches training, not
even its wording.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqa_distill.teacher.images.discovery import ImageRef
from vqa_distill.teacher.qa.questions import KINDS, QAUnit

REASON_TARGETED = "targeted"


@dataclass(frozen=True)
class Lost:
    """One item the student lost to the teacher: its image, the question's kind and text, the user's prompt."""

    sha256: str
    kind: str
    question: str
    prompt: str
    held_out: bool


def targeted_prompt(focus: str, kind: str, question: str) -> str:
    """Ask for new questions of ``kind`` about the same skill as a question the student missed."""
    return (
        f"{focus}\nA student model answered this {kind} question about the image wrongly: \"{question}\". "
        f"Ask new {kind} questions about this image that test the same skill in other words."
    )


def weak_kind_prompt(focus: str, kind: str) -> str:
    """Ask for questions of a kind the student is weak at (directed by held-out losses, which are never quoted)."""
    return f"{focus}\nA student model is weak at {kind} questions: ask {kind} questions about what this image shows."


def losses_of(eval_json: Path, *, held_out: bool) -> list[Lost]:
    """The cases of an evaluation the student lost to the teacher, worst first as the report orders them."""
    if not eval_json.is_file():
        return []
    document: dict[str, Any] = json.loads(eval_json.read_text(encoding="utf-8"))
    lost = []
    for case in document.get("cases", []):
        verdict = case.get("verdicts", {}).get("teacher")
        info = case["case"]
        if verdict is None or verdict["outcome"] != "loss" or not info.get("sha256") or info["kind"] not in KINDS:
            continue
        lost.append(Lost(info["sha256"], info["kind"], info["question"], info["prompt"], held_out))
    return lost


@dataclass(frozen=True)
class TargetedUnit:
    """A question set to ask: the unit (its prompt says what to target), the kind, and the user's prompt."""

    unit: QAUnit
    kind: str
    focus: str


def unit_mark(unit: QAUnit) -> str:
    """A targeted unit as the loop's state remembers it: its image and its prompt."""
    return f"{unit.sha256}\t{unit.prompt}"


def targeted_units(
    lost: Sequence[Lost],
    images: Mapping[str, ImageRef],
    training: Sequence[str],
    *,
    limit: int,
    seed: int,
    asked_before: Collection[str] = (),
) -> list[TargetedUnit]:
    """Training losses first (their own images), then held-out losses (a training image each), ``limit`` at most.

    A unit an earlier round asked (``asked_before``, by ``unit_mark``) would be answered from the ledger
    and add no row: the next lost item takes its place. (The round being planned is not in it, so a
    round resumed after a kill plans the same units as before.)
    """
    chosen: list[TargetedUnit] = []
    seen: set[tuple[str, str]] = set()
    rotation = [sha for sha in training if sha in images]
    random.Random(seed).shuffle(rotation)
    for item in sorted(lost, key=lambda item: item.held_out):
        if len(chosen) >= limit:
            break
        if item.held_out:
            prompt = weak_kind_prompt(item.prompt, item.kind)
            fresh = (s for s in rotation if (s, item.kind) not in seen and f"{s}\t{prompt}" not in asked_before)
            sha = next(fresh, None)
            if sha is None:
                continue
        else:
            sha, prompt = item.sha256, targeted_prompt(item.prompt, item.kind, item.question)
            if sha not in images or f"{sha}\t{prompt}" in asked_before:
                continue
        seen.add((sha, item.kind))
        ref = images[sha]
        chosen.append(TargetedUnit(QAUnit(ref.path, ref.rel_path, ref.sha256, prompt), item.kind, item.prompt))
    return chosen
