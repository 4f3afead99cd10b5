"""The evaluation's measures, as pure functions: ROUGE-L, degenerate answers, exact match, rates with intervals.

ROUGE-L's stock tokenizer keeps only ``[a-z0-9]`` and so scores every Chinese answer 0; ours splits CJK
text into characters and everything else into words, and every word-level measure here uses it.

A degenerate answer is no answer at all (nothing, one unit over and over, a loop, the question read
back): a judge or a ROUGE score of it says nothing about what the model learned.

Pairwise outcomes follow MT-Bench and MLLM-as-a-Judge: each pair is judged in both orders and a verdict
that flips with the order is the judge's position bias, counted as a tie. Rates carry a Wilson score
interval, which stays inside [0, 1] and is honest at small n, where the normal approximation is not.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING

from vqa_distill.student.judged.results import Outcome, Pick, RateWithCI

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer

_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+", re.UNICODE
)
MIN_REPEATS = 3  # a text that is one unit at least this many times over is "repeated"
LOOP_MAX_UNIT = 4  # words in the longest unit checked for back-to-back repeats
LOOP_MIN_REPEATS = 4  # back-to-back repeats of a unit, or occurrences of a phrase, that make a loop
LOOP_MIN_PHRASE = 3  # words in the shortest phrase whose scattered repeats can make a loop
LOOP_MIN_SHARE = 0.5  # share of the answer's words such a phrase must cover
COPY_MIN_ROUGE_L = 0.9  # an answer this close to the question (ROUGE-L F1) ...
COPY_MAX_EXTRA = 2  # ... with at most this many words more than it, reads the question back
SHORT_MAX_WORDS = 3  # a reference of at most this many words is a short answer: exact match means something
Z_95 = 1.96  # the normal quantile of a two-sided 95 % interval
PLACES = 4  # rates and means are rounded to this many decimals

_ARTICLES = frozenset({"a", "an", "the"})
_NUMBERS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")  # "1,000" is one number
_APOSTROPHE = re.compile(r"['’]")  # "don't" -> "dont", not "don t"
_PUNCTUATION = re.compile(r"[^\w\s.]|_|(?<!\d)\.|\.(?!\d)")  # a "." between digits ("3.5") is kept


class MixedScriptTokenizer:
    """Lower-cased words, with each CJK character a token of its own (rouge_score's tokenizer protocol)."""

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into ROUGE tokens."""
        return _TOKEN.findall(text.lower())


_WORDS = MixedScriptTokenizer()


@cache
def _scorer() -> RougeScorer:
    """One scorer for the process; rouge_score is imported on first use, not with this module."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=MixedScriptTokenizer())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference``, on mixed-script tokens."""
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def rouge_l_many(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 per pair."""
    return [rouge_l(pred, ref) for pred, ref in zip(predictions, references, strict=True)]


# --- degenerate answers -------------------------------------------------------------------------


def degenerate_reason(answer: str, question: str | None = None) -> str | None:
    """Why ``answer`` is no answer at all, or None when it is one.

    "empty", "whitespace" and "no words" say what is missing. "repeated" is one unit over and over,
    whitespace aside: one word ("the the the"), one symbol ("....") or one token's text
    ("<|unused_7|><|unused_7|>..."), a cut-off last repeat included. "loop" is an answer that fell into
    a loop part of the way (see ``_loops``). "question copy" reads ``question`` back (checked only
    when it is given).
    """
    if not answer:
        return "empty"
    if not answer.strip():
        return "whitespace"
    words = _WORDS.tokenize(answer)
    if len(words) >= MIN_REPEATS and len(set(words)) == 1:
        return "repeated"
    if _period(answer) is not None:
        return "repeated"
    if not words:
        return "no words"
    if _loops(words):
        return "loop"
    if question is not None and _copies(words, answer, question):
        return "question copy"
    return None


def _period(text: str) -> int | None:
    """The shortest unit that ``text`` (whitespace removed) repeats at least MIN_REPEATS times, or None."""
    compact = "".join(text.split())
    for size in range(1, len(compact) // MIN_REPEATS + 1):
        if compact[size:] == compact[:-size]:
            return size
    return None


def _loops(words: Sequence[str]) -> bool:
    """Whether the words fall into a loop: a short unit back to back, or one phrase that is most of the text.

    Prose repeats words ("the", "of", "picture") but not a unit four times in a row, nor one phrase
    so often that it is half of everything said.
    """
    return any(_back_to_back(words, size) for size in range(1, LOOP_MAX_UNIT + 1)) or _dominant_phrase(words)


def _back_to_back(words: Sequence[str], size: int) -> bool:
    """Whether some unit of ``size`` words (not all numbers) repeats LOOP_MIN_REPEATS times in a row.

    A unit repeated k times in a row is a stretch of (k - 1) * size positions where each word equals
    the word ``size`` further on. Units of numbers only are left out: "1 1 1 1" or "0 0 0 0" is a row
    of data as often as a loop (a long one is still caught by ``_dominant_phrase`` or "repeated").
    """
    need = (LOOP_MIN_REPEATS - 1) * size
    run = 0
    for index in range(len(words) - size):
        run = run + 1 if words[index] == words[index + size] else 0
        if run >= need and not all(w.isdigit() for w in words[index - run + 1 : index - run + 1 + size]):
            return True
    return False


def _dominant_phrase(words: Sequence[str]) -> bool:
    """Whether a phrase of LOOP_MIN_PHRASE or more words occurs LOOP_MIN_REPEATS times and covers LOOP_MIN_SHARE.

    Phrases grow one word at a time from the starts where the shorter phrase already occurred often
    enough (a phrase is never more frequent than its prefix), so prose, where few phrases repeat at
    all, costs one or two passes.
    """
    ids = {word: index for index, word in enumerate(dict.fromkeys(words))}
    keys = [ids[word] for word in words]  # keys[i]: the id of the phrase of ``size`` words at i
    starts = list(range(len(words)))
    for size in range(1, len(words) // LOOP_MIN_REPEATS + 1):
        if size > 1:
            phrases: dict[tuple[int, int], int] = {}  # (phrase of size - 1, next word) -> phrase id
            starts = [i for i in starts if i + size <= len(words)]
            for i in starts:
                keys[i] = phrases.setdefault((keys[i], ids[words[i + size - 1]]), len(phrases))
        by_phrase: defaultdict[int, list[int]] = defaultdict(list)
        for i in starts:
            by_phrase[keys[i]].append(i)
        frequent = [at for at in by_phrase.values() if len(at) >= LOOP_MIN_REPEATS]
        if size >= LOOP_MIN_PHRASE and any(_covers(at, size, len(words)) for at in frequent):
            return True
        starts = sorted(i for at in frequent for i in at)
        if not starts:
            return False
    return False


def _covers(starts: Sequence[int], size: int, total: int) -> bool:
    """Whether a phrase at ``starts`` (sorted), counted without overlaps, occurs often enough and covers enough."""
    count, free_from = 0, 0
    for start in starts:
        if start >= free_from:
            count, free_from = count + 1, start + size
    return count >= LOOP_MIN_REPEATS and count * size >= LOOP_MIN_SHARE * total


def _copies(words: Sequence[str], answer: str, question: str) -> bool:
    """Whether the answer is the question read back: the same words, or nearly (ROUGE-L, few extra words)."""
    asked = _WORDS.tokenize(question)
    if not asked:
        return False
    if list(words) == asked:
        return True
    return len(words) - len(asked) <= COPY_MAX_EXTRA and rouge_l(answer, question) >= COPY_MIN_ROUGE_L


# --- exact match on short answers ---------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """VQA-style normal form: lower case, no punctuation or articles, number words as digits, single spaces."""
    text = _PUNCTUATION.sub(" ", _APOSTROPHE.sub("", _THOUSANDS.sub("", text.lower())))
    return " ".join(_NUMBERS.get(word, word) for word in text.split() if word not in _ARTICLES)


def is_short(reference: str) -> bool:
    """Whether ``reference`` is a short answer (a number, a colour, yes/no), where exact match means something."""
    count = len(_WORDS.tokenize(normalize_answer(reference)))
    return 0 < count <= SHORT_MAX_WORDS


def exact_match(prediction: str, reference: str) -> bool | None:
    """Whether ``prediction`` gives the short ``reference`` answer; None when the reference is not short.

    A one-word reference ("yes", "blue", "3") also matches a prediction that opens with it and goes on
    to explain ("Yes, it is wider"), as instruction-tuned models do.
    """
    if not is_short(reference):
        return None
    said, wanted = normalize_answer(prediction), normalize_answer(reference)
    if said == wanted:
        return True
    if len(wanted.split()) != 1:
        return False
    said_words, wanted_words = _WORDS.tokenize(said), _WORDS.tokenize(wanted)
    return said_words[: len(wanted_words)] == wanted_words


# --- outcomes and rates -------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n``; (0.0, 1.0) when there is nothing to go on."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds, not 1e-17 off
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


_SINGLE: dict[Pick, Outcome] = {"student": "win", "opponent": "loss", "tie": "tie"}


def combine_orders(first: Pick | None, second: Pick | None) -> Outcome:
    """The student's outcome from both orders' picks: a win or loss must hold in both, else it is a tie.

    A verdict that flips with the order is the judge's position bias, not a preference. An order not
    asked (None) leaves the other to count alone.
    """
    if first is None or second is None:
        single = second if first is None else first
        if single is None:
            raise ValueError("no pick in either order")
        return _SINGLE[single]
    return _SINGLE[first] if first == second else "tie"


def rate_of(outcomes: Iterable[Outcome]) -> RateWithCI:
    """The win-or-tie rate of ``outcomes`` with its 95 % Wilson interval, rounded to PLACES."""
    counts = Counter(outcomes)
    wins, ties, losses = counts["win"], counts["tie"], counts["loss"]
    n = wins + ties + losses
    low, high = wilson_interval(wins + ties, n)
    rate = (wins + ties) / n if n else 0.0
    return RateWithCI(wins, ties, losses, round(rate, PLACES), round(low, PLACES), round(high, PLACES))


def mean_or_none(values: Iterable[float | int | None]) -> float | None:
    """The mean of the values that are there, rounded to PLACES; None when none is."""
    present = [float(value) for value in values if value is not None]
    return round(math.fsum(present) / len(present), PLACES) if present else None
