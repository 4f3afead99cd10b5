"""Typed parameters of the distil loop: the ``distill-loop`` deployment's form and ``vqa-distill distill``.

The teacher stage runs in questions mode (the kinds of question are what the loop targets); the
student's options are the pipeline's; the judge is the evaluation's. Budgets cover the teacher's
requests (questions and answers); the judge's calls are counted and reported apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vqa_distill.student.handoff import StudentOptions
from vqa_distill.teacher.params import TeacherParams

DEFAULT_QUESTIONS = 3


class DistillParams(BaseModel):
    """Everything a distil loop needs except the API key; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: TeacherParams = Field(description="The teacher: images, prompts, endpoint, model, limits (questions mode).")
    student: StudentOptions = Field(description="The student: model, tuner and steps per round (dataset: the loop's).")
    rounds: int = Field(default=3, ge=1, le=50, description="Rounds at most, round 0 (the seed) included.")
    seed_share: float = Field(default=0.3, gt=0, le=1, description="Share of the images asked in round 0.")
    seed_count: int | None = Field(default=None, ge=1, description="Images asked in round 0 (overrides seed_share).")
    holdout_share: float = Field(
        default=0.2, gt=0, lt=1, description="Share of the images held out for judging, fixed for the whole loop."
    )
    budget_usd: float | None = Field(default=None, gt=0, description="Stop before the teacher's spend would pass this.")
    budget_requests: int | None = Field(default=None, ge=1, description="Stop before the teacher's requests would pass this.")
    min_gain: float = Field(
        default=0.0, description="Stop when the win-or-tie rate gains less than this over a round (0: never)."
    )
    doubt_images: int = Field(default=4, ge=0, description="Unlabelled images the student doubts most, asked per round.")
    targeted_questions: int = Field(default=2, ge=1, le=10, description="New questions per item the student lost.")
    targeted_items: int = Field(default=8, ge=0, description="Lost items turned into targeted questions per round, at most.")
    probe_rows: int = Field(default=12, ge=0, description="Training rows judged per round to find the student's mistakes.")
    selection: Literal["loop", "random"] = Field(
        default="loop",
        description="loop: targeted questions and doubted images; random: as many random pool images instead "
        "(the baseline the loop is measured against).",
    )
    judge_model: str | None = Field(default=None, description="Judge model; default: the teacher's.")
    judge_rpm: int | None = Field(default=None, ge=1, description="Judge requests per minute (default: the teacher's).")
    judge_tpm: int | None = Field(default=None, ge=100, description="Judge tokens per minute (default: the teacher's).")
    eval_max_new_tokens: int = Field(default=256, ge=1, description="Longest answer the student writes when judged.")
    seed: int = Field(default=42, description="Seed of the image split and of every choice the loop makes.")

    @model_validator(mode="after")
    def _questions_mode(self) -> DistillParams:
        if self.teacher.batch:
            raise ValueError("the loop asks round by round: leave teacher.batch off")
        if self.teacher.questions is None:
            object.__setattr__(self, "teacher", self.teacher.model_copy(update={"questions": DEFAULT_QUESTIONS}))
        return self
