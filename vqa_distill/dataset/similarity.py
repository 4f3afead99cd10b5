"""How alike two texts are: near-duplicate questions about one image, and duplicate answers across a dataset.

Questions are short, so they are compared pairwise on normalized word tokens (Jaccard) and characters
(difflib). Answers are compared across the whole dataset, so they are indexed: word 3-shingles, an exact
Jaccard threshold, and prefix filtering (two sets that reach the threshold must share one of the rarest
tokens at the front of either set), which keeps the search exact and near-linear on real datasets.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

QUESTION_JACCARD = 0.8  # word-token Jaccard at or above which two questions ask the same thing
QUESTION_CHAR_RATIO = 0.9  # difflib ratio at or above which two questions are the same text give or take typos
ANSWER_JACCARD = 0.8  # 3-shingle Jaccard at or above which two answers are the same text reworded slightly
ANSWER_SHINGLE_WORDS = 3
DEDUP_MIN_WORDS = 6  # answers shorter than this ("Yes.", "Two red cars.") repeat legitimately across images

# Word characters of any script; CJK ideographs count one token each (Chinese has no spaces between words).
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Return ``text`` case-folded, NFKC-normalized, punctuation dropped, whitespace collapsed."""
    return " ".join(tokens(text))


def tokens(text: str) -> list[str]:
    """Return the word tokens of ``text`` (CJK characters one token each), case-folded."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    """Return |a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def questions_alike(a: str, b: str) -> float | None:
    """Return how alike two questions are (0..1) when they ask the same thing, else None."""
    words = jaccard(set(tokens(a)), set(tokens(b)))
    chars = SequenceMatcher(None, normalize(a), normalize(b), autojunk=False).ratio()
    if words >= QUESTION_JACCARD or chars >= QUESTION_CHAR_RATIO:
        return round(max(words, chars), 3)
    return None


def near_duplicate_questions(questions: Sequence[str]) -> dict[int, tuple[int, float]]:
    """Map the position of each question that nearly repeats an earlier kept one to (that position, similarity)."""
    repeats: dict[int, tuple[int, float]] = {}
    kept: list[int] = []
    for position, question in enumerate(questions):
        for earlier in kept:
            similarity = questions_alike(questions[earlier], question)
            if similarity is not None:
                repeats[position] = (earlier, similarity)
                break
        else:
            kept.append(position)
    return repeats


def shingles(text: str, size: int = ANSWER_SHINGLE_WORDS) -> frozenset[str]:
    """Return the word ``size``-grams of ``text`` (the whole text when it is shorter)."""
    words = tokens(text)
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass(frozen=True)
class Match:
    """The earlier text a text repeats, and how closely (1.0: the same text once normalized)."""

    of: int
    similarity: float


class AnswerIndex:
    """Find, for each answer in turn, an earlier kept answer it duplicates (exactly or nearly).

    Built over every answer first (token frequencies order each shingle set, rarest first), then
    queried in dataset order with ``check_and_add``: a duplicate is reported and not indexed, so a
    row is always compared with the rows that stay.
    """

    def __init__(self, texts: Sequence[str], threshold: float = ANSWER_JACCARD):
        self._threshold = threshold
        self._sets = [shingles(text) for text in texts]
        self._exact = [normalize(text) for text in texts]
        self._eligible = [len(tokens(text)) >= DEDUP_MIN_WORDS for text in texts]
        frequency: Counter[str] = Counter(s for shingle_set in self._sets for s in shingle_set)
        self._order = {s: (frequency[s], s) for s in frequency}
        self._postings: defaultdict[str, list[int]] = defaultdict(list)
        self._by_exact: dict[str, int] = {}

    def _prefix(self, index: int) -> list[str]:
        ordered = sorted(self._sets[index], key=self._order.__getitem__)
        length = len(ordered) - math.ceil(self._threshold * len(ordered)) + 1
        return ordered[: max(1, length)]

    def check_and_add(self, index: int) -> Match | None:
        """Return the earlier kept answer that text ``index`` duplicates, or None after keeping it."""
        if not self._eligible[index]:
            return None
        exact = self._by_exact.get(self._exact[index])
        if exact is not None:
            return Match(exact, 1.0)
        mine = self._sets[index]
        prefix = self._prefix(index)
        seen: set[int] = set()
        best: Match | None = None
        for shingle in prefix:
            for other in self._postings.get(shingle, ()):
                if other in seen:
                    continue
                seen.add(other)
                similarity = jaccard(mine, self._sets[other])
                if similarity >= self._threshold and (best is None or similarity > best.similarity):
                    best = Match(other, round(similarity, 3))
        if best is not None:
            return best
        self._by_exact[self._exact[index]] = index
        for shingle in prefix:
            self._postings[shingle].append(index)
        return None
