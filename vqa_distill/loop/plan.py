"""What one round asks the teacher, as groups of question-set units: held-out and seed (round 0), targeted, doubted.

Each group is asked in questions mode with its own style (a targeted group asks only its kind) and
built into rows in its own folder (``rounds/r<N>/asked/<group>``); all share the loop's ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vqa_distill.loop.doubt import REASON_DOUBT
from vqa_distill.loop.targets import REASON_TARGETED, TargetedUnit
from vqa_distill.loop.versions import REASON_SEED
from vqa_distill.teacher.images.discovery import ImageRef
from vqa_distill.teacher.params import QuestionStyle, TeacherParams
from vqa_distill.teacher.qa.questions import QAUnit

REASON_HOLDOUT = "holdout"
REASON_RANDOM = "random"
ASKED_DIR = "asked"


@dataclass(frozen=True)
class AskGroup:
    """Units asked alike: a name (its folder), why (seed, targeted, doubt, holdout), the style and count."""

    name: str
    reason: str
    units: list[QAUnit]
    style: QuestionStyle
    count: int
    focus_of: dict[str, str] = field(default_factory=dict)  # a unit's prompt -> the user's prompt

    def params(self, teacher: TeacherParams, round_folder: Path) -> TeacherParams:
        """The teacher's parameters for this group: its style and count, its own folder, no split."""
        update = {"out": str(round_folder / ASKED_DIR / self.name), "question_style": self.style,
                  "questions": self.count, "val_ratio": 0.0, "review": 0}  # fmt: skip
        return teacher.model_copy(update=update)


def image_units(shas: Sequence[str], images: Mapping[str, ImageRef], prompts: Sequence[str]) -> list[QAUnit]:
    """Every image x user prompt, as a run of the teacher would ask them."""
    return [
        QAUnit(images[sha].path, images[sha].rel_path, sha, prompt) for sha in shas if sha in images for prompt in prompts
    ]


def first_round(holdout: Sequence[str], seed: Sequence[str], images: Mapping[str, ImageRef], teacher: TeacherParams) -> list[AskGroup]:
    """Round 0: the held-out images (they become the fixed judged rows) and the seed images, as a plain run would."""
    prompts, style, count = teacher.all_prompts(), teacher.question_style, teacher.questions or 1
    return [
        AskGroup(REASON_HOLDOUT, REASON_HOLDOUT, image_units(holdout, images, prompts), style, count),
        AskGroup(REASON_SEED, REASON_SEED, image_units(seed, images, prompts), style, count),
    ]


def later_round(targeted: Sequence[TargetedUnit], doubted: Sequence[str], images: Mapping[str, ImageRef],
                teacher: TeacherParams, *, targeted_questions: int) -> list[AskGroup]:  # fmt: skip
    """A later round: one targeted group per kind the student lost, then the images it doubts."""
    groups = []
    for kind in sorted({t.kind for t in targeted}):
        chosen = [t for t in targeted if t.kind == kind]
        focus_of = {t.unit.prompt: t.focus for t in chosen}
        groups.append(AskGroup(f"{REASON_TARGETED}-{kind}", REASON_TARGETED, [t.unit for t in chosen], kind,  # type: ignore[arg-type]
                               targeted_questions, focus_of))  # fmt: skip
    units = image_units(doubted, images, teacher.all_prompts())
    groups.append(AskGroup(REASON_DOUBT, REASON_DOUBT, units, teacher.question_style, teacher.questions or 1))
    return groups


def random_round(pool: Sequence[str], images: Mapping[str, ImageRef], teacher: TeacherParams, *, count: int,
                 seed: int) -> list[AskGroup]:  # fmt: skip
    """The baseline's later round: ``count`` pool images drawn at random, asked as round 0 asked its seed."""
    import random

    drawn = random.Random(seed).sample(sorted(pool), min(count, len(pool)))
    units = image_units(drawn, images, teacher.all_prompts())
    return [AskGroup(REASON_RANDOM, REASON_RANDOM, units, teacher.question_style, teacher.questions or 1)]
