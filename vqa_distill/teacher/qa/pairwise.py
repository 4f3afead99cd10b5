"""The pairwise judge: which of two answers to one question about an image is better, or a tie.

A score from 1 to 5 drifts with the judge's mood; a choice between two answers shown side by side is
steadier, which is what comparing a student with its teacher (or two checkpoints) needs. A comparison is
a structured-output request like a rubric judgement: its prompt carries the rubric, the question and
both answers in order, its parameters the JSON schema, so its content key covers the image bytes, the
question, both answers and their order, the judge model and the parameters. Judges favour whichever
answer comes first; callers that care ask both orders (two keys) and count a split verdict as a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from vqa_distill.teacher.answers.outcomes import answer_record
from vqa_distill.teacher.endpoint.client import TeacherAnswer
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import TeacherRecord
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.judge import checked_verdict, json_object, verdict_request
from vqa_distill.teacher.qa.questions import QAUnit

Winner = Literal["A", "B", "tie"]
WINNERS: tuple[Winner, ...] = get_args(Winner)
SCHEMA_NAME = "answer_comparison"
PAIRWISE_SYSTEM = (
    "You compare answers about images strictly and fairly. You look at the image before you compare."
)
PAIRWISE_RUBRIC = """Two answers to the same question about this image follow. Say which one is better for this image.
The better answer is correct, specific to what the image shows, invents nothing the image does not show,
and answers the whole question. Length alone is no merit: more words count only when what they add is
correct and about this image. Say "tie" when both are equally good or equally bad.
The order and the labels of the answers mean nothing."""


@dataclass(frozen=True)
class PairwiseVerdict:
    """A pairwise judge's choice between answer A (shown first) and answer B, and why."""

    winner: Winner
    reason: str


def pairwise_prompt(question: str, first: str, second: str) -> str:
    """Compose the rubric, the question and the two answers (``first`` as A) into the judge's prompt."""
    return f"{PAIRWISE_RUBRIC}\n\nQuestion: {question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}"


def pairwise_format() -> dict[str, Any]:
    """Return the ``response_format`` (strict JSON schema) of a comparison."""
    schema = {
        "type": "object",
        "properties": {"winner": {"type": "string", "enum": list(WINNERS)}, "reason": {"type": "string"}},
        "required": ["winner", "reason"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def pairwise_request(
    unit: QAUnit, question: str, first: str, second: str, params: TeacherParams
) -> TeacherRequest:
    """Return the request that compares two answers (``first`` shown as A) with ``params.judge_model``."""
    return verdict_request(unit, pairwise_prompt(question, first, second), PAIRWISE_SYSTEM, pairwise_format(), params)


def parse_pairwise(text: str) -> PairwiseVerdict | str:
    """Read a comparison; return why it cannot be used instead when it is not one."""
    data = json_object(text)
    if isinstance(data, str):
        return data
    winner = data.get("winner")
    if winner not in WINNERS:
        return f"winner {winner!r} is not one of {', '.join(WINNERS)}"
    return PairwiseVerdict(winner, str(data.get("reason") or ""))


def pairwise_record(
    request: TeacherRequest, answer: TeacherAnswer, *, attempts: int, flow_run_id: str | None, started_at: str
) -> TeacherRecord:
    """Record a comparison; unusable (with why) when it names no valid winner."""
    record = answer_record(request, answer, attempts=attempts, flow_run_id=flow_run_id, started_at=started_at)
    return checked_verdict(record, parse_pairwise, error_class="UnusableComparison", what="comparison")
