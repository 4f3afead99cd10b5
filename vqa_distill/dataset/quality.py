"""The quality gates a question and its answer pass before they become a training row, and their counts.

Each gate has a reason (the key counted in the ``teacher-quality`` artifact and written beside every row
left out in ``rejected.jsonl``) and a sentence saying what it catches. docs/vqa.md explains each one.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

REFUSAL_WINDOW_CHARS = 160  # a refusal says so up front: only the opening is searched
SCORE_BAR_CHARS = 30  # width of the longest bar in the score histogram
SCORES = (1, 2, 3, 4, 5)

# Refusals and apologies, English and Chinese, matched case-insensitively in the opening only, so an
# answer that later says "the label cannot be read" is not taken for one. "I can't" counts only before a
# verb of refusing ("I can't help", "I cannot identify"): "I can't see any crack" is an answer.
REFUSAL_PHRASES = (
    "i'm sorry", "i am sorry", "sorry, but", "i apologize", "i apologise", "my apologies",
    "as an ai", "as a language model", "as an artificial intelligence", "i'm not comfortable",
    "抱歉", "对不起", "无法", "很遗憾", "作为一个人工智能", "作为人工智能", "作为ai", "作为一个ai", "我不能", "不能提供",
)  # fmt: skip
REFUSING_VERBS = (
    "help", "assist", "provide", "answer", "comply", "identify", "determine", "tell", "describe", "analy",
    "view", "access", "process", "fulfil", "do that", "see the image", "see images", "make out", "discuss",
)  # fmt: skip
_CANNOT = r"\bi\s*(?:can't|cannot|can not|am unable to|'m unable to|am not able to|'m not able to|won't be able to)\s+"
_REFUSAL = re.compile(
    "|".join([*(re.escape(p) for p in REFUSAL_PHRASES), _CANNOT + "(?:" + "|".join(map(re.escape, REFUSING_VERBS)) + ")"]),
    re.IGNORECASE,
)

REASON_QUESTIONS_UNUSABLE = "questions unusable"
REASON_DUPLICATE_QUESTION = "duplicate question"
REASON_UNUSABLE = "unusable answer"
REASON_REFUSAL = "refusal"
REASON_NOT_JUDGED = "not judged"
REASON_IMAGELESS = "question needs no image"
REASON_LOW_SCORE = "low score"
REASON_DUPLICATE_ANSWER = "duplicate answer"

WHAT_EACH_CATCHES = {
    REASON_QUESTIONS_UNUSABLE: "the teacher's question list for an image was not valid JSON, empty or cut off",
    REASON_DUPLICATE_QUESTION: "a question nearly repeating an earlier one about the same image (never answered)",
    REASON_UNUSABLE: "an answer cut off (length), withheld (content filter) or empty",
    REASON_REFUSAL: "the teacher refused or apologised instead of answering",
    REASON_NOT_JUDGED: "--min-score is set but the judge gave no score (its call failed: rerun to retry it)",
    REASON_IMAGELESS: "the judge says the question can be answered without looking at the image",
    REASON_LOW_SCORE: "the judge scored the answer under --min-score",
    REASON_DUPLICATE_ANSWER: "the same or nearly the same answer as an earlier row (answers of 6+ words)",
}


def refusal_in(text: str) -> str | None:
    """Return the refusal or apology phrase that opens ``text``, or None when it reads as an answer."""
    match = _REFUSAL.search(text[:REFUSAL_WINDOW_CHARS].replace("\u2019", "'"))
    return match.group(0) if match else None


class QualityReport(BaseModel):
    """What the gates let through and left out, and the judge's scores (the ``teacher-quality`` artifact)."""

    kept: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    scores: dict[int, int] = Field(default_factory=dict)  # score -> rows that got it (kept or not)
    short_question_sets: int = 0  # lists with fewer questions than asked for; their questions are used
    unanswered: int = 0  # questions without an answer yet (failed or not asked this run): not rows
    no_questions: int = 0  # image x prompt without a question list yet (failed or not asked this run)
    min_score: int | None = None
    judged: bool = False

    def reject(self, reason: str) -> None:
        """Count one row left out for ``reason``."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def score(self, value: int) -> None:
        """Count one judge score."""
        self.scores[value] = self.scores.get(value, 0) + 1

    def markdown(self) -> str:
        """Return the report as markdown: rows by reason, then the score histogram as bars."""
        lines = [
            "# Teacher quality",
            "",
            "| rows | count | what it catches |",
            "|---|---:|---|",
            f"| kept | {self.kept} | |",
        ]
        lines += [
            f"| left out: {reason} | {self.rejected[reason]} | {WHAT_EACH_CATCHES.get(reason, '')} |"
            for reason in sorted(self.rejected, key=lambda r: (-self.rejected[r], r))
        ]
        lines += ["", f"Short question lists (used as they are): {self.short_question_sets}."]
        lines.append(f"Questions without an answer (failed or not asked; see failed.jsonl): {self.unanswered}.")
        lines.append(f"Images x prompts without a question list (failed or not asked): {self.no_questions}.")
        lines += ["", *self._histogram()]
        return "\n".join(lines)

    def _histogram(self) -> list[str]:
        if not self.judged:
            return ["No judge (--judge-model): no scores."]
        most = max(self.scores.values(), default=0)
        cut = f" (--min-score {self.min_score}: lower scores left out)" if self.min_score else ""
        lines = [f"## Judge scores{cut}", "", "| score | rows | |", "|---:|---:|---|"]
        for value in SCORES:
            count = self.scores.get(value, 0)
            bar = "█" * (round(SCORE_BAR_CHARS * count / most) if most else 0)
            lines.append(f"| {value} | {count} | {bar} |")
        return lines
