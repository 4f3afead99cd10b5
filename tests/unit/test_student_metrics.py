"""The evaluation's measures against values worked out by hand: Wilson intervals, ROUGE-L, loops, exact match."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from vqa_distill.student.judged.results import Outcome, Pick, RateWithCI
from vqa_distill.student.metrics import (
    combine_orders,
    degenerate_reason,
    exact_match,
    is_short,
    mean_or_none,
    normalize_answer,
    rate_of,
    rouge_l,
    rouge_l_many,
    wilson_interval,
)

# --- Wilson score interval ----------------------------------------------------------------------
# centre = (p + z²/2n) / (1 + z²/n), half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z² = 3.8416:
#   8/10:   denom 1.38416; centre (0.8 + 0.19208)/1.38416 = 0.71673;
#           half 1.96·sqrt(0.016 + 0.009604)/1.38416 = 1.96·0.16001/1.38416 = 0.22658 -> (0.4902, 0.9433)
#   0/10:   centre 0.19208/1.38416 = 0.13877; half 1.96·sqrt(0.009604)/1.38416 = 0.13877 -> (0, 0.2775)
#   10/10:  the mirror image of 0/10 -> (0.7225, 1)
#   50/100: denom 1.038416; centre 0.519208/1.038416 = 0.5;
#           half 1.96·sqrt(0.0025 + 0.000096)/1.038416 = 1.96·0.050951/1.038416 = 0.09617 -> (0.4038, 0.5962)
#   2/3:    denom 2.28053; centre (0.66667 + 0.64027)/2.28053 = 0.57308;
#           half 1.96·sqrt(0.074074 + 0.106711)/2.28053 = 1.96·0.425188/2.28053 = 0.36543 -> (0.2077, 0.9385)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (2, 3, 0.2077, 0.9385),
    ],
)
def test_wilson_interval_matches_the_textbook(successes: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_ends_exactly_at_the_bounds_and_knows_nothing_of_nothing() -> None:
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # a wider z, a wider interval: 8/10 at z = 2.576 (99 %)
    assert wilson_interval(8, 10, z=2.576)[0] < 0.4902 < 0.9433 < wilson_interval(8, 10, z=2.576)[1]


@pytest.mark.parametrize(("successes", "n"), [(11, 10), (-1, 10), (0, -1)])
def test_wilson_interval_refuses_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, n)


# --- ROUGE-L ------------------------------------------------------------------------------------

PAIRS = [
    # (prediction, reference, F1): LCS "police the gunman" = 3 of 4 both ways -> P = R = 0.75
    ("police kill the gunman", "police killed the gunman", 0.75),
    # LCS "the gunman" = 2 of 4 -> 0.5 (word order matters, unlike bag-of-words overlap)
    ("the gunman kill police", "police killed the gunman", 0.5),
    # LCS "the tile red" = 3: P = 3/3, R = 3/5 -> F1 = 2·1·0.6/1.6 = 0.75
    ("the tile red", "the tile is dark red", 0.75),
    ("The tile is red.", "the tile is RED", 1.0),
    ("blue", "red", 0.0),
]


@pytest.mark.parametrize(("prediction", "reference", "f1"), PAIRS)
def test_rouge_l_on_known_pairs(prediction: str, reference: str, f1: float) -> None:
    assert rouge_l(prediction, reference) == pytest.approx(f1)


@pytest.mark.parametrize(("prediction", "reference", "f1"), PAIRS)
def test_rouge_l_agrees_with_rouge_score_on_plain_english(prediction: str, reference: str, f1: float) -> None:
    stock = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert rouge_l(prediction, reference) == pytest.approx(stock)


def test_rouge_l_many_scores_pairs_and_counts_each_cjk_character() -> None:
    # 这是红色的瓷砖 (7) vs 这是红色瓷砖 (6): LCS 6 -> F1 = 2·6/(7+6)
    scores = rouge_l_many(
        ["police kill the gunman", "这是红色的瓷砖"], ["police killed the gunman", "这是红色瓷砖"]
    )
    assert scores == pytest.approx([0.75, 12 / 13])
    with pytest.raises(ValueError):
        rouge_l_many(["one"], [])


# --- degenerate answers: loops and question copies ----------------------------------------------

TEACHER_ANSWERS = [
    "The picture shows a kitchen counter. On the left side of the picture there is a red cup, and on the "
    "right side of the picture there is a stack of white plates next to the sink.",
    "The image is a close-up of a ceramic tile floor. Most of the tiles are gray, but the tile in the center "
    "of the picture is cracked, and the crack runs from the top of the tile to the bottom of the tile.",
    "Overall: The image is a landscape 640x480 picture, almost entirely blue. The top of the picture is "
    "lighter blue, the bottom of the picture is darker blue, and the middle of the picture is in between.",
    "There are three people in the photo: a man in a blue jacket, a woman in a red coat and a child holding "
    "the hand of the woman.",
    "The red tile and the red cup are on the table, and the red tile is larger than the red cup.",
    "It is a very, very old photograph of the harbour, taken from the end of the pier.",
    "Defects: a scratch on the left edge, a scratch on the right edge, a dent near the top.",
    "Yes, the left one is wider than the right one.",
    "图片中是一只猫，猫的颜色是灰色的，猫坐在窗台上，窗台旁边是一盆绿色的植物。",
    "The values in the first row read 0 0 0 0 and the second row reads 1 2 3 4.",
]


@pytest.mark.parametrize("answer", TEACHER_ANSWERS)
def test_descriptive_prose_with_repeated_words_is_not_a_loop(answer: str) -> None:
    assert degenerate_reason(answer) is None


@pytest.mark.parametrize(
    "answer",
    [
        "The picture is gray and some some some some some some",
        "The tile: it is red it is red it is red it is red",  # (the whole answer one unit is "repeated")
        "The tile is blue. It is blue. It is blue. It is blue. It is blue.",
        "A cat sits on the mat and and and and looks at the window.",
        "The surface is smooth and and then the the the the the the the",
        "非常非常非常非常好",  # a two-character unit four times
        "图片是灰色的的的的的的",
        # one phrase four times, apart, as 16 of 19 words
        "the cat is black, and the cat is black; yes the cat is black, so the cat is black",
        "The value is " + "0 " * 40,  # numbers in a row are data, but not 40 of them as most of the text
    ],
)
def test_an_answer_that_falls_into_a_loop_is_flagged(answer: str) -> None:
    assert degenerate_reason(answer) == "loop"


def test_a_whole_answer_of_one_unit_is_still_repeated_not_a_loop() -> None:
    assert degenerate_reason("some some some some") == "repeated"
    assert degenerate_reason("it is red it is red it is red") == "repeated"
    assert degenerate_reason("it is red it is red") is None  # a stutter, not a loop


QUESTION = "Is the left tile wider than the right tile in this picture?"


@pytest.mark.parametrize(
    "answer",
    [
        QUESTION,
        "is the left tile wider than the right tile in this picture",  # case and punctuation aside
        "Is the left tile wider than the right tile in picture?",  # one word left out: F1 20/21
        "Is the left tile wider than the right tile in this picture? Yes",  # one word more: F1 22/23
    ],
)
def test_an_answer_that_reads_the_question_back_is_a_question_copy(answer: str) -> None:
    assert degenerate_reason(answer, QUESTION) == "question copy"
    assert degenerate_reason(answer) is None  # only checked when the question is given


def test_an_answer_close_to_the_question_is_no_copy_when_it_says_more_or_differs() -> None:
    assert degenerate_reason("Yes, the left tile is wider than the right tile.", QUESTION) is None
    assert degenerate_reason("No.", QUESTION) is None
    # F1 = 2·11/(14 + 11) = 0.88 but three words more: an answer that repeats the question and goes on
    assert degenerate_reason(QUESTION + " Yes it is", QUESTION) is None
    long_question = " ".join(f"word{i}" for i in range(40))
    # F1 = 2·40/(43 + 40) = 0.96, but three words more than the question
    assert degenerate_reason(long_question + " and so on", long_question) is None
    assert degenerate_reason(long_question + " so on", long_question) == "question copy"
    assert degenerate_reason("这块瓷砖是什么颜色", "这块瓷砖是什么颜色？") == "question copy"
    assert degenerate_reason("蓝色", "?!") is None  # a question with no words copies nothing


def test_the_old_reasons_come_first() -> None:
    assert degenerate_reason("", QUESTION) == "empty"
    assert degenerate_reason(" \n", QUESTION) == "whitespace"
    assert degenerate_reason("?!", QUESTION) == "no words"
    assert degenerate_reason("the the the", "the the the") == "repeated"


# --- exact match on short answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Dog's bowl!", "dogs bowl"),
        ("An apple, a pear.", "apple pear"),
        ("Three.", "3"),
        ("  It's   3.5 metres. ", "its 3.5 metres"),
        ("1,000 tiles", "1000 tiles"),
        ("ten cats, zero dogs, eleven birds", "10 cats 0 dogs eleven birds"),
        ("x-ray", "x ray"),
        ("红色。", "红色"),
    ],
)
def test_normalize_answer(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


@pytest.mark.parametrize(
    ("reference", "short"),
    [
        ("blue", True), ("3", True), ("Yes.", True), ("dark red", True), ("The dark red one", True),
        ("two", True), ("红色", True), ("a small dark red cup", False), ("这是红色的瓷砖", False),
        ("", False), ("?!", False),
    ],
)  # fmt: skip
def test_is_short(reference: str, short: bool) -> None:
    assert is_short(reference) is short


@pytest.mark.parametrize(
    ("prediction", "reference", "match"),
    [
        ("Yes, it is wider", "yes", True),
        ("No.", "yes", False),
        ("Yes.", "Yes", True),
        ("Blue", "blue.", True),
        ("The tile is blue", "blue", False),  # the first word is what counts, not any word
        ("two", "2", True),
        ("2 tiles", "two", True),
        ("yesterday", "yes", False),
        ("dark red", "Dark red.", True),
        ("red", "dark red", False),
        ("dark red tile", "dark red", False),  # a reference of several words must be met exactly
        ("35", "3.5", False),
        ("1,000", "1000", True),
        ("是的，它更宽", "是", True),
        ("不是", "是", False),
        ("The tile is blue", "The tile in the picture is a light blue", None),  # not a short reference
        ("anything", "", None),
    ],
)
def test_exact_match(prediction: str, reference: str, match: bool | None) -> None:
    assert exact_match(prediction, reference) is match


# --- outcomes and rates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("student", "student", "win"),
        ("opponent", "opponent", "loss"),
        ("tie", "tie", "tie"),
        ("student", "opponent", "tie"),  # flipped with the order: position bias
        ("opponent", "student", "tie"),
        ("student", "tie", "tie"),
        ("tie", "student", "tie"),
        ("opponent", "tie", "tie"),
        ("tie", "opponent", "tie"),
        ("student", None, "win"),
        (None, "student", "win"),
        ("opponent", None, "loss"),
        (None, "opponent", "loss"),
        ("tie", None, "tie"),
        (None, "tie", "tie"),
    ],
)
def test_combine_orders_truth_table(first: Pick | None, second: Pick | None, outcome: Outcome) -> None:
    assert combine_orders(first, second) == outcome


def test_combine_orders_needs_a_pick() -> None:
    with pytest.raises(ValueError, match="no pick"):
        combine_orders(None, None)


def test_rate_of_counts_ties_with_wins_and_gives_the_wilson_interval() -> None:
    win: Outcome = "win"
    tie: Outcome = "tie"
    loss: Outcome = "loss"
    assert rate_of([win] * 6 + [tie] * 2 + [loss] * 2) == RateWithCI(
        wins=6, ties=2, losses=2, rate=0.8, low=0.4902, high=0.9433
    )
    three = rate_of(iter([win, tie, loss]))
    assert three == RateWithCI(1, 1, 1, 0.6667, 0.2077, 0.9385)
    assert three.describe() == "0.67 [0.21, 0.94] (n=3)"
    assert rate_of([]) == RateWithCI(0, 0, 0, 0.0, 0.0, 1.0)
    assert rate_of([loss] * 10) == RateWithCI(0, 0, 10, 0.0, 0.0, 0.2775)


def test_mean_or_none() -> None:
    assert mean_or_none([1, None, 2]) == 1.5
    assert mean_or_none([1 / 3, None]) == 0.3333
    assert mean_or_none([0]) == 0.0
    assert mean_or_none([None, None]) is None
    assert mean_or_none(iter([])) is None
