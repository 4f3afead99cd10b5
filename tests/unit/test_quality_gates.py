"""The quality gates' text checks: refusals, near-duplicate questions, duplicate answers, the report."""

from __future__ import annotations

import random

import pytest

from vqa_distill.dataset.quality import QualityReport, refusal_in
from vqa_distill.dataset.similarity import (
    ANSWER_JACCARD,
    DEDUP_MIN_WORDS,
    AnswerIndex,
    jaccard,
    near_duplicate_questions,
    normalize,
    shingles,
    tokens,
)


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry — this image is too dark.",
        "I cannot identify the people in this photo.",
        "I am unable to determine the size from this picture.",
        "As an AI, I do not have eyes.",
        "Sorry, but I won't describe that.",
        "抱歉，我无法识别这张图片。",
        "对不起，这个问题我不能回答。",
        "无法从图片中判断裂纹的长度。",
        "作为一个人工智能，我不能提供医疗建议。",
    ],
)
def test_refusals_and_apologies_are_caught(text: str) -> None:
    assert refusal_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "I can't see any crack on the surface; it looks smooth.",
        "The label cannot be read at this resolution, but the box is red.",
        "There are two scratches near the upper left corner.",
        "图中有两条裂纹，位于左上角。",
        "",
    ],
)
def test_answers_are_not_taken_for_refusals(text: str) -> None:
    assert refusal_in(text) is None


def test_a_refusal_is_looked_for_in_the_opening_only() -> None:
    answer = "The panel shows three dents. " * 10 + "I'm sorry for the long answer."
    assert refusal_in(answer) is None


def test_tokens_ignore_case_and_punctuation_and_split_chinese() -> None:
    assert tokens("What COLOUR is the car-door?") == ["what", "colour", "is", "the", "car", "door"]
    assert tokens("这辆车") == ["这", "辆", "车"]
    assert normalize("  Hello,   World! ") == "hello world"


def test_near_duplicate_questions_point_at_the_first_one() -> None:
    questions = [
        "What color is the car?",
        "What is the color of the car?",  # reworded: same words
        "What color is the truck?",  # a different question
        "what color is the car",  # the first, without case and punctuation
        "Where is the scratch on the door?",
        "Where is the scratch on the door??",  # a typo away
    ]
    repeats = near_duplicate_questions(questions)
    assert set(repeats) == {1, 3, 5}
    assert repeats[1][0] == 0 and repeats[3] == (0, 1.0) and repeats[5][0] == 4
    assert near_duplicate_questions(["这辆车是什么颜色？", "这辆车是什么颜色", "车门上有划痕吗？"]) == {1: (0, 1.0)}


def test_exact_and_near_duplicate_answers_are_found_and_short_ones_are_not() -> None:
    texts = [
        "The panel has a long scratch running across its upper left corner.",
        "The panel has a long scratch running across its upper left corner!",  # the same once normalized
        "The panel has a long scratch running across its upper left corner today.",  # nearly the same
        "Yes.",
        "Yes.",  # short answers repeat legitimately
        "A dent sits in the middle of the lower edge, about two centimetres wide.",
    ]
    index = AnswerIndex(texts)
    found = [index.check_and_add(i) for i in range(len(texts))]
    assert found[0] is None and found[3] is None and found[4] is None and found[5] is None
    assert found[1] is not None and (found[1].of, found[1].similarity) == (0, 1.0)
    assert found[2] is not None and found[2].of == 0 and ANSWER_JACCARD <= found[2].similarity < 1.0


def _brute_force(texts: list[str]) -> list[int | None]:
    """The reference: compare every answer with every earlier kept one."""
    kept: list[int] = []
    out: list[int | None] = []
    for i, text in enumerate(texts):
        match = None
        if len(tokens(text)) >= DEDUP_MIN_WORDS:
            for k in kept:
                if normalize(texts[k]) == normalize(text) or jaccard(shingles(texts[k]), shingles(text)) >= ANSWER_JACCARD:
                    match = k
                    break
        out.append(match)
        if match is None and len(tokens(text)) >= DEDUP_MIN_WORDS:
            kept.append(i)
    return out


def test_the_answer_index_agrees_with_comparing_every_pair() -> None:
    rng = random.Random(3)
    words = ["the", "a", "panel", "scratch", "dent", "crack", "left", "right", "upper", "lower", "edge", "corner", "long", "short", "wide", "red", "blue"]
    base = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 40))) for _ in range(80)]
    texts = []
    for text in base:  # originals, copies, and copies with a word changed or added near the end
        texts.append(text)
        variant = rng.random()
        if variant < 0.2:
            texts.append(text.upper() + ".")
        elif variant < 0.5:
            changed = text.split()
            changed[-1 - rng.randrange(min(3, len(changed)))] = rng.choice(words)
            texts.append(" ".join(changed + ([rng.choice(words)] if rng.random() < 0.5 else [])))
    index = AnswerIndex(texts)
    found = [index.check_and_add(i) for i in range(len(texts))]
    expected = _brute_force(texts)
    assert [m is not None for m in found] == [e is not None for e in expected]
    assert sum(e is not None for e in expected) > 5  # the corpus does hold near-duplicates


def test_the_quality_report_counts_reasons_and_draws_the_score_histogram() -> None:
    report = QualityReport(min_score=4, judged=True, kept=7)
    for reason in ("refusal", "refusal", "low score"):
        report.reject(reason)
    for score in (5, 5, 5, 4, 2):
        report.score(score)
    markdown = report.markdown()
    assert "| kept | 7 |" in markdown
    assert "| left out: refusal | 2 | the teacher refused or apologised instead of answering |" in markdown
    assert "| left out: low score | 1 |" in markdown
    bars = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in markdown.splitlines() if "█" in line}
    assert len(bars["5"]) == 30 and len(bars["4"]) == 10 and len(bars["2"]) == 10 and "3" not in bars
    assert "--min-score 4" in markdown
    assert "No judge" in QualityReport().markdown()
