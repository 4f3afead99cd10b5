"""The offline judge's reading of an answer, its 1-5 grade, and its choice between two answers.

A real judge looks at the picture and checks what the answer claims. The offline judge does the same
with what ``answers.measure`` finds: it counts the picture's facts an answer names (main colour, other
colours, size "WxH", brightness, contrast, texture, brightest quarter, orientation) and the facts it gets
wrong (a colour of its vocabulary the picture does not show, another size, an orientation or "wider"/
"taller" that contradicts the picture). The grade and the comparison are pure functions of the picture
and the answers, so a verdict is reproducible and the same whichever answer is shown first. It reads
only the request's text and schema, never the client's code: "Answer A:" and "Answer B:" are found by
its own pattern.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from vqa_distill.offline_teacher.replies.answers import PALETTE, ImageFeatures
from vqa_distill.offline_teacher.replies.structured import NOTHING, Filler, Path, instance_of

GRADE_EMPTY, GRADE_WRONG, GRADE_NOTHING, GRADE_MIXED, GRADE_SOME, GRADE_FULL = 1, 1, 2, 3, 4, 5
FULL_GRADE_FACTS = 3  # facts that make a grade of 5 without the main colour and the size
WINNERS = ("A", "B", "tie")
# The judge's words for each level of a measurement, (upper bound, ways of saying it): the bounds the
# teacher writes with (questions._words, answers.describe), both its wordings accepted.
BRIGHTNESS_WORDS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (60, ("dark",)),
    (110, ("dim", "dimly lit")),
    (170, ("moderately bright", "moderately lit")),
    (math.inf, ("bright",)),
)
CONTRAST_WORDS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (25, ("low",)),
    (60, ("moderate",)),
    (math.inf, ("high",)),
)
TEXTURE_WORDS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (8, ("smooth",)),
    (25, ("fine-grained", "fine grained")),
    (math.inf, ("busy",)),
)
ORIENTATIONS = ("landscape", "portrait", "square")
COLOUR_ALIASES = {"grey": "gray", "dark grey": "dark gray", "light grey": "light gray"}
# Longest first, so "dark gray" is read as one colour and not as "gray".
_COLOURS = sorted([name for name, _ in PALETTE] + list(COLOUR_ALIASES), key=len, reverse=True)
_COLOUR = re.compile(r"\b(" + "|".join(re.escape(c) for c in _COLOURS) + r")\b", re.IGNORECASE)
_SIZE = re.compile(r"\b(\d{1,5})\s*[xX×]\s*(\d{1,5})\b")
_BLOCKS = re.compile(
    r"^Answer A:[ \t]*\n?(?P<a>.*?)\n\s*^Answer B:[ \t]*\n?(?P<b>.*)\Z", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Reading:
    """What one answer says of the picture: the facts it names and those it gets wrong."""

    named: tuple[str, ...]
    wrong: tuple[str, ...]
    empty: bool = False

    @property
    def net(self) -> int:
        """Return facts named minus facts wrong."""
        return len(self.named) - len(self.wrong)


def _level(value: float, levels: tuple[tuple[float, tuple[str, ...]], ...]) -> tuple[str, ...]:
    return next(words for bound, words in levels if value < bound)


def _says(text: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<!moderately )\b{re.escape(w)}\b", text, re.IGNORECASE) for w in words)


def _says_contrast(text: str, words: tuple[str, ...]) -> bool:
    """Whether a level word sits within two words of "contrast" ("low contrast", "contrast is low")."""
    for w in map(re.escape, words):
        near = rf"\b{w}\b(?:\W+\w+){{0,2}}?\W+contrast\b|\bcontrast\b(?:\W+\w+){{0,2}}?\W+{w}\b"
        if re.search(near, text, re.IGNORECASE):
            return True
    return False


def read_answer(features: ImageFeatures, answer: str) -> Reading:
    """Return the picture's facts that ``answer`` names and the ones it gets wrong (each counted once)."""
    f = features
    if not answer.strip():
        return Reading((), (), empty=True)
    named: list[str] = []
    wrong: list[str] = []
    said = {COLOUR_ALIASES.get(m.lower(), m.lower()) for m in _COLOUR.findall(answer)}
    named += [("main colour " if c == f.colours[0] else "colour ") + c for c in f.colours if c in said]
    wrong += [f"colour {c}" for c in sorted(said - set(f.colours))]
    rest = _COLOUR.sub(" ", answer)  # "dark gray" says nothing of brightness
    sizes = {(int(w), int(h)) for w, h in _SIZE.findall(rest)}
    named += ["size"] if (f.width, f.height) in sizes else []
    wrong += [f"size {w}x{h}" for w, h in sorted(sizes - {(f.width, f.height)})]
    named += ["brightness"] if _says(rest, _level(f.brightness, BRIGHTNESS_WORDS)) else []
    named += ["contrast"] if _says_contrast(rest, _level(f.contrast, CONTRAST_WORDS)) else []
    named += ["texture"] if _says(rest, _level(f.edge_score, TEXTURE_WORDS)) else []
    vertical, horizontal = f.brightest_quadrant.split()
    quadrant = rf"\b{'(?:upper|top)' if vertical == 'upper' else '(?:lower|bottom)'}[ -]{horizontal}\b"
    named += ["brightest quarter"] if re.search(quadrant, rest, re.IGNORECASE) else []
    shapes = {o for o in ORIENTATIONS if _says(rest, (o,))}
    shapes |= {"landscape"} if _says(rest, ("wider than",)) else set()
    shapes |= {"portrait"} if _says(rest, ("taller than",)) else set()
    named += ["orientation"] if f.orientation in shapes else []
    wrong += [f"orientation {o}" for o in sorted(shapes - {f.orientation})]
    return Reading(tuple(named), tuple(wrong))


def grade(reading: Reading) -> int:
    """Return the rubric's 1-5 grade of a reading.

    5: the main colour and the size, or 3+ facts, and nothing wrong; 4: some fact and nothing wrong;
    3: facts and wrong facts both; 2: no fact at all; 1: only wrong facts, or an empty answer.
    """
    if reading.empty:
        return GRADE_EMPTY
    if reading.wrong:
        return GRADE_MIXED if reading.named else GRADE_WRONG
    if not reading.named:
        return GRADE_NOTHING
    full = {"size"} <= set(reading.named) and any(n.startswith("main colour") for n in reading.named)
    return GRADE_FULL if full or len(reading.named) >= FULL_GRADE_FACTS else GRADE_SOME


def describe_reading(reading: Reading) -> str:
    """Say what a reading counted, for a verdict's ``reason``."""
    named = f" ({', '.join(reading.named)})" if reading.named else ""
    wrong = f" ({', '.join(reading.wrong)})" if reading.wrong else ""
    return f"names {len(reading.named)} of its facts{named} and gets {len(reading.wrong)} wrong{wrong}"


def compare(features: ImageFeatures, first: str, second: str) -> tuple[str, str]:
    """Return the winner ("A", "B" or "tie") of two answers about one picture, and why.

    The grade decides first (an invented fact costs more than a missing one), then facts named minus
    facts wrong; each answer is read on its own, so swapping them swaps the winner and nothing else.
    """
    a, b = read_answer(features, first), read_answer(features, second)
    rank_a, rank_b = (grade(a), a.net), (grade(b), b.net)
    winner = "A" if rank_a > rank_b else "B" if rank_b > rank_a else "tie"
    reason = f"A {describe_reading(a)} (grade {rank_a[0]}); B {describe_reading(b)} (grade {rank_b[0]})."
    return winner, reason


def answers_compared(request_text: str) -> tuple[str, str] | None:
    """Return the texts of "Answer A:" and "Answer B:" in a request, or None when it holds no such pair."""
    found = _BLOCKS.search(request_text)
    return (found.group("a").strip(), found.group("b").strip()) if found else None


def is_comparison(node: dict[str, Any]) -> bool:
    """Whether a schema node is an object with a ``winner`` to choose among A, B and tie."""
    winner = node.get("properties", {}).get("winner", {}) if node.get("type") == "object" else {}
    enum = winner.get("enum") if isinstance(winner, dict) else None
    return isinstance(enum, list) and set(WINNERS) <= set(enum)


def pairwise_filler(features: ImageFeatures, request_text: str, fault_kind: str | None) -> Filler:
    """Fill any object whose ``winner`` is one of A, B and tie, from the two answers in the request."""
    pair = answers_compared(request_text)
    winner, reason = (
        compare(features, *pair) if pair else ("tie", "The request holds no Answer A and Answer B.")
    )

    def fill(path: Path, node: dict[str, Any]) -> Any:
        if not is_comparison(node):
            return NOTHING
        properties = node["properties"]
        verdict = instance_of({**node, "properties": {k: v for k, v in properties.items() if k != "winner"}})
        verdict["winner"] = winner
        if "reason" in properties:
            verdict["reason"] = reason
        return verdict

    return fill
