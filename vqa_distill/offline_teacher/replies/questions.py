"""The offline teacher's own questions about an image, its answers to them, and its judge's scores.

Questions come from a bank of templates filled with what ``answers.measure`` finds in the picture (its
colours, brightness, contrast, texture, brightest quarter, size), ordered by a seed of the image and the
request, so they are deterministic, tied to the image and distinct. When such a question comes back
with the same image, it is recognised and answered from the same measurements, always mentioning the
picture's size and what the question is about. The judge's scores and comparisons are deterministic too
(``pairwise`` reads an answer against the picture). Faults can make the list repeat itself
(``duplicate_questions``) or the judge score low (``low_score``) or say the question needs no image
(``imageless``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from vqa_distill.offline_teacher.replies.answers import ImageFeatures, describe
from vqa_distill.offline_teacher.replies.pairwise import (
    GRADE_EMPTY,
    GRADE_FULL,
    describe_reading,
    grade,
    pairwise_filler,
    read_answer,
)
from vqa_distill.offline_teacher.replies.structured import NOTHING, Filler, Path, array_length, instance_of

KIND_ORDER = ("conversation", "detail", "reasoning")
DEFAULT_QUESTIONS = 3  # when neither the schema nor the prompt says how many
_COUNT_IN_TEXT = re.compile(r"\b(\d{1,2})\s+(?:distinct\s+)?questions\b", re.IGNORECASE)
# Rewordings that make a repeated question (the duplicate_questions fault): near-duplicates, not copies.
REPEATS = ("{q}", "{q_lower}", "{q_bare}, exactly?", "So, {q_lower}", "{q_bare} here?", "Tell me: {q_lower}")

# (topic, kind, question template); {colour}, {quadrant}, {orientation}, {texture} come from the picture.
BANK: tuple[tuple[str, str, str], ...] = (
    ("colour", "conversation", "What is the main colour of this {orientation} picture?"),
    ("brightest", "conversation", "Which part of this mostly {colour} picture is the brightest?"),
    ("shape", "conversation", "Is this picture wider than it is tall?"),
    ("others", "conversation", "Besides {colour}, which other colours can you see?"),
    ("light", "conversation", "Is this picture dark or bright overall?"),
    ("texture", "conversation", "Is the surface in this picture smooth or textured?"),
    ("contrast", "conversation", "How strong is the contrast between light and dark here?"),
    ("size", "conversation", "How large is this picture in pixels?"),
    ("describe", "detail", "Describe this picture in detail."),
    ("palette", "detail", "Describe the colours of this picture and how much of it each one covers."),
    ("lighting", "detail", "Describe how the light falls across this picture, quarter by quarter."),
    ("surface", "detail", "Give a detailed account of the texture and edges you can see."),
    ("corner", "detail", "Describe what stands out in the {quadrant} quarter of the picture."),
    ("blind", "detail", "Describe this {orientation} picture to someone who cannot see it."),
    ("why_bright", "reasoning", "Why might the {quadrant} be the brightest part of this picture?"),
    ("why_texture", "reasoning", "What does the {texture} texture suggest about the surface shown, and why?"),
    ("inspect", "reasoning", "Where would you look first for a defect in this picture, and why?"),
    ("print", "reasoning", "Would this picture be easy to inspect when printed, given its brightness and contrast?"),
    ("why_contrast", "reasoning", "What could explain how much contrast this picture has?"),
    ("scene", "reasoning", "Given its colours, what kind of object or scene could this be, and why?"),
)


def _words(f: ImageFeatures) -> dict[str, Any]:
    """Return what the templates and answers say about a picture."""
    brightness = "dark" if f.brightness < 60 else "dim" if f.brightness < 110 else "moderately bright" if f.brightness < 170 else "bright"
    contrast = "low" if f.contrast < 25 else "moderate" if f.contrast < 60 else "high"
    texture = "smooth" if f.edge_score < 8 else "fine-grained" if f.edge_score < 25 else "busy"
    others = " and ".join(f.colours[1:]) or f"no colour other than {f.colours[0]} covering a noticeable share"
    spread = f"almost entirely {f.colours[0]}"
    if len(f.colours) > 1:
        spread = f"mostly {f.colours[0]} with {' and some '.join(f.colours[1:])}"
    return {
        "colour": f.colours[0], "others": others, "spread": spread, "orientation": f.orientation, "quadrant": f.brightest_quadrant,
        "texture": texture, "brightness_word": brightness, "contrast_word": contrast, "size": f"{f.width}x{f.height}",
        "b": f"{f.brightness:.0f}", "c": f"{f.contrast:.1f}", "e": f"{f.edge_score:.1f}",
        "wide": "Yes" if f.width > f.height else "No", "mp": f"{f.width * f.height / 1e6:.2f}",
    }  # fmt: skip


ANSWERS: dict[str, str] = {
    "colour": "The main colour is {colour}: the {size} picture is {spread}, at a mean brightness of {b}/255.",
    "brightest": "The {quadrant} quarter is the brightest part of this {size} {colour} picture, whose mean brightness is {b}/255.",
    "shape": "{wide}: the picture is {size} pixels, so it is {orientation}, and it is mostly {colour}.",
    "others": "Besides {colour}, this {size} picture shows {others}.",
    "light": "It is {brightness_word} overall: the {size} picture has a mean brightness of {b}/255, brightest in the {quadrant}.",
    "texture": "The surface looks {texture}: the {size} picture has an edge score of {e} on a {contrast_word} contrast of {c}.",
    "contrast": "The contrast is {contrast_word}: brightness in this {size} picture varies by {c} around a mean of {b}/255.",
    "size": "This picture is {size} pixels, about {mp} megapixels, in {orientation} format and mostly {colour}.",
    "palette": "The {size} picture is {spread}; its brightest quarter is the {quadrant}, at a mean brightness of {b}/255.",
    "lighting": "Light peaks in the {quadrant} quarter of this {size} picture and falls off elsewhere, around a mean of {b}/255 with {contrast_word} contrast ({c}).",
    "surface": "Across the {size} picture the texture is {texture}, with an edge score of {e}; edges are {contrast_word} in contrast ({c}).",
    "corner": "In the {quadrant} quarter the {colour} of this {size} picture is at its brightest, above the mean of {b}/255.",
    "blind": "Picture a {orientation} {size} frame filled mostly with {colour}, {brightness_word} (about {b}/255), with a {texture} surface.",
    "why_bright": "The {quadrant} of this {size} picture is likely nearest the light or the most reflective part of the {colour} surface, reaching above its mean of {b}/255.",
    "why_texture": "A {texture} texture (edge score {e}) on this {size} {colour} picture suggests {surface_guess}.",
    "inspect": "I would start in the {quadrant} of this {size} picture, where the light is strongest and a flaw on the {colour} surface would show best.",
    "print": "{print_verdict}: the {size} picture is {brightness_word} ({b}/255) with {contrast_word} contrast ({c}).",
    "why_contrast": "The {contrast_word} contrast ({c}) of this {size} picture comes from {contrast_cause}.",
    "scene": "Mostly {colour} and {texture}, this {size} picture could show {scene_guess}, judging by its colours alone.",
}  # fmt: skip


def _answer_words(f: ImageFeatures) -> dict[str, Any]:
    words = _words(f)
    smooth = words["texture"] == "smooth"
    words["surface_guess"] = "an even, polished or painted surface" if smooth else "a rough or patterned surface"
    readable = f.contrast >= 25 and 60 <= f.brightness <= 200
    words["print_verdict"] = "Yes, fairly" if readable else "Not easily"
    words["contrast_cause"] = (
        "a nearly uniform colour and even light" if f.contrast < 25 else "areas of different colour and light"
    )
    words["scene_guess"] = "a flat painted panel" if smooth else "a textured material or a busy scene"
    return words


def _seed(features: ImageFeatures, text: str) -> int:
    return hashlib.sha256(f"{features}\x00{text}".encode()).digest()[0]


def _render(template: str, words: dict[str, Any]) -> str:
    return template.format(**words)


def own_questions(
    features: ImageFeatures, request_text: str, kinds: Sequence[str], *, repeat: bool = False
) -> list[str]:
    """Return one distinct question per requested kind, in order; ``repeat`` rewords the first instead."""
    words = _words(features)
    start = _seed(features, request_text)
    order = [BANK[(start + i) % len(BANK)] for i in range(len(BANK))]
    used: set[str] = set()
    questions: list[str] = []
    for kind in kinds:
        topic_template = next((t for t in order if t[1] == kind and t[0] not in used), None)
        topic_template = topic_template or next((t for t in order if t[0] not in used), order[len(questions) % len(order)])
        used.add(topic_template[0])
        questions.append(_render(topic_template[2], words))
    if repeat and questions:
        first = questions[0]
        bare = first.rstrip("?")
        variants = {"q": first, "q_lower": first[0].lower() + first[1:], "q_bare": bare}
        questions = [REPEATS[i % len(REPEATS)].format(**variants) for i in range(len(questions))]
    return questions


def own_answer(features: ImageFeatures, question: str) -> str | None:
    """Return the answer to one of the bank's questions about this picture, or None for any other text."""
    words = _words(features)
    wanted = " ".join(question.split()).casefold()
    for topic, _kind, template in BANK:
        if _render(template, words).casefold() == wanted:
            if topic == "describe":
                return describe(features, f"This {words['size']} picture")
            return _render(ANSWERS[topic], _answer_words(features))
    return None


def _question_count(node: dict[str, Any], request_text: str) -> int:
    found = _COUNT_IN_TEXT.search(request_text)
    wanted = int(node["minItems"]) if "minItems" in node else int(found.group(1)) if found else DEFAULT_QUESTIONS
    return array_length(node, wanted)


def question_filler(features: ImageFeatures, request_text: str, fault_kind: str | None) -> Filler:
    """Fill any array of questions (strings, or objects with a ``question`` and maybe a ``kind``)."""

    def fill(path: Path, node: dict[str, Any]) -> Any:
        items = node.get("items") if node.get("type") == "array" else None
        if not isinstance(items, dict):
            return NOTHING
        holds_objects = "question" in items.get("properties", {})
        if not holds_objects and not (path and path[-1] == "questions" and items.get("type") == "string"):
            return NOTHING
        count = _question_count(node, request_text)
        kind_node = items.get("properties", {}).get("kind", {}) if holds_objects else {}
        allowed = [k for k in kind_node.get("enum", KIND_ORDER) if k in KIND_ORDER] or list(KIND_ORDER)
        kinds = [allowed[i % len(allowed)] for i in range(count)]
        texts = own_questions(features, request_text, kinds, repeat=fault_kind == "duplicate_questions")
        if not holds_objects:
            return texts
        out = []
        for kind, text in zip(kinds, texts, strict=True):
            item = instance_of(items)
            item["question"] = text
            if "kind" in item and kind in kind_node.get("enum", [kind]):
                item["kind"] = kind
            out.append(item)
        return out

    return fill


def judge_filler(features: ImageFeatures, request_text: str, fault_kind: str | None) -> Filler:
    """Fill any object with an integer ``score``: the answer's ``pairwise.grade``, or the lowest (low_score)."""
    answer = request_text.rsplit("Answer:", 1)[-1]  # the answer being judged, when the prompt labels it
    reading = read_answer(features, answer)

    def fill(path: Path, node: dict[str, Any]) -> Any:
        properties = node.get("properties", {})
        if node.get("type") != "object" or properties.get("score", {}).get("type") != "integer":
            return NOTHING
        verdict = instance_of({**node, "properties": {k: v for k, v in properties.items() if k != "score"}})
        bounds = properties["score"]
        low, high = bounds.get("minimum", GRADE_EMPTY), bounds.get("maximum", GRADE_FULL)
        verdict["score"] = low if fault_kind == "low_score" else max(low, min(high, grade(reading)))
        if "needs_image" in properties:
            verdict["needs_image"] = fault_kind != "imageless"
        if "reason" in properties:
            size = f"{features.width}x{features.height}"
            verdict["reason"] = f"Against the {size} picture, the answer {describe_reading(reading)}."
        return verdict

    return fill


def combined(*fillers: Filler) -> Filler:
    """Return a filler that asks each of ``fillers`` in turn."""

    def fill(path: Path, node: dict[str, Any]) -> Any:
        for filler in fillers:
            value = filler(path, node)
            if value is not NOTHING:
                return value
        return NOTHING

    return fill


FillerFactory = Callable[[ImageFeatures, str, str | None], Filler]
FILLERS: tuple[FillerFactory, ...] = (question_filler, judge_filler, pairwise_filler)
