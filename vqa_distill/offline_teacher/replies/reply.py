"""What the offline teacher says to a request that got through: structured JSON, a refusal, or an answer.

A ``json_schema`` response format gets a valid instance of its schema (questions, scores and the
winner of a comparison filled from the picture); a ``json_object`` one gets ``{"answer": ...}``. A
plain request gets the answer to one of the teacher's own questions when it is one, else
``answers.compose_answer``. The ``refuse`` and ``canned_answer`` faults replace a plain answer with a
refusal or with the same boilerplate every time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from vqa_distill.offline_teacher.replies.answers import ImageFeatures, compose_answer
from vqa_distill.offline_teacher.replies.pairwise import is_comparison
from vqa_distill.offline_teacher.replies.questions import FILLERS, combined, own_answer
from vqa_distill.offline_teacher.replies.structured import ResponseFormat, instance_of
from vqa_distill.offline_teacher.server.faults import FaultRule

REFUSAL_TEXT = "I'm sorry, but I can't help with identifying details in this image."
CANNED_ANSWER = (
    "This image shows a typical scene with several elements that are clearly visible and well composed overall."
)
PURPOSE_TEXT, PURPOSE_QUESTIONS, PURPOSE_JUDGE, PURPOSE_JSON = "text", "questions", "judge", "json"
PURPOSE_COMPARE = "compare"  # a pairwise judge: no content fault is meant for it (a low score is meaningless)


def purpose_of(response_format: ResponseFormat) -> str:
    """Name what a request asks for (text, questions, judge, compare, json): faults apply where they fit."""
    schema = response_format.schema
    if response_format.type == "text" or schema is None:
        return PURPOSE_TEXT if response_format.type == "text" else PURPOSE_JSON
    if is_comparison(schema):
        return PURPOSE_COMPARE
    text = json.dumps(schema)
    if '"score"' in text:
        return PURPOSE_JUDGE
    return PURPOSE_QUESTIONS if '"question' in text else PURPOSE_JSON


def reply(
    response_format: ResponseFormat,
    images: Sequence[ImageFeatures],
    user_text: str,
    system: str,
    fault: FaultRule | None,
) -> str:
    """Return the content of the answer to a request (before the output cap and content faults)."""
    fault_kind = fault.kind if fault is not None else None
    if response_format.type == "json_schema" and response_format.schema is not None:
        fill = None
        if images:
            fill = combined(*(make(images[0], user_text, fault_kind) for make in FILLERS))
        return json.dumps(instance_of(response_format.schema, fill), ensure_ascii=False)
    if response_format.type == "json_object":
        return json.dumps({"answer": compose_answer(images, user_text, system)}, ensure_ascii=False)
    if fault_kind == "refuse":
        return REFUSAL_TEXT
    if fault_kind == "canned_answer":
        return CANNED_ANSWER
    own = own_answer(images[0], user_text) if len(images) == 1 else None
    return own or compose_answer(images, user_text, system)
