"""Deterministic "teacher" answers computed from what is really in the image and the prompt.

The answer is a pure function of the image pixels, the prompt and the system text, so the same request
always gets the same words (a ledger or a dataset built twice is identical), and different images or
prompts get different words (a dataset built from them is not one repeated row).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageStat

PROMPT_ECHO_WORDS = 10  # how much of the prompt the answer quotes back
PROMPT_ECHO_CHARS = 70

# Named colours that pixels are snapped to; nearest in RGB is crude but stable and fast (done in C).
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (15, 15, 15)),
    ("dark gray", (70, 70, 70)),
    ("gray", (128, 128, 128)),
    ("light gray", (190, 190, 190)),
    ("white", (245, 245, 245)),
    ("red", (200, 30, 30)),
    ("orange", (240, 140, 30)),
    ("yellow", (235, 220, 50)),
    ("green", (50, 160, 60)),
    ("dark green", (25, 80, 35)),
    ("teal", (30, 140, 140)),
    ("blue", (40, 90, 210)),
    ("navy", (20, 30, 90)),
    ("purple", (120, 50, 160)),
    ("pink", (240, 150, 190)),
    ("brown", (120, 75, 40)),
    ("beige", (215, 195, 160)),
)
OPENERS = ("Looking closely:", "From what is visible:", "At a glance:", "Overall:")
QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
# Prompt keyword -> the closing remark; the first keyword found wins.
FOCUS_REMARKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("defect", "damage", "scratch", "crack", "flaw"),
        "no sharp irregularity stands out beyond the texture noted",
    ),
    (("colour", "color"), "the colour balance described above is the dominant impression"),
    (
        ("count", "how many", "number of"),
        "the edge pattern suggests a few distinct regions rather than many small objects",
    ),
    (("text", "read", "label", "written"), "no clearly legible text can be confirmed from these cues alone"),
    (("where", "locat", "position"), "the most visually prominent area is where the brightness peaks"),
)
DEFAULT_REMARK = "the scene is best summarised by its colours, lighting and texture"


def _palette_image() -> Image.Image:
    flat = [c for _, rgb in PALETTE for c in rgb]
    flat += list(PALETTE[0][1]) * (256 - len(PALETTE))  # pad with the first colour; mapped back below
    image = Image.new("P", (1, 1))
    image.putpalette(flat)
    return image


_PALETTE_IMAGE = _palette_image()


@dataclass(frozen=True)
class ImageFeatures:
    """Cheap, stable measurements of one image that an answer can be written from."""

    width: int
    height: int
    colours: tuple[str, ...]  # up to three names, most common first
    brightness: float  # mean luma, 0-255
    contrast: float  # standard deviation of luma
    edge_score: float  # mean edge-filter response: higher means busier texture
    brightest_quadrant: str

    @property
    def orientation(self) -> str:
        """Return "landscape", "portrait" or "square"."""
        if self.width > self.height:
            return "landscape"
        return "portrait" if self.height > self.width else "square"


def measure(thumbnail: Image.Image, width: int, height: int) -> ImageFeatures:
    """Measure a small RGB copy of an image whose real size is ``width`` x ``height``."""
    rgb = thumbnail.convert("RGB")
    quantised = rgb.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE)
    counts: dict[int, int] = {}
    for count, index in quantised.getcolors(256) or []:
        slot = index if isinstance(index, int) and index < len(PALETTE) else 0  # padding maps to 0
        counts[slot] = counts.get(slot, 0) + count
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    colours = tuple(PALETTE[i][0] for i, n in ranked[:3] if n * 20 >= rgb.width * rgb.height)  # >= 5%
    luma = rgb.convert("L")
    stat = ImageStat.Stat(luma)
    edges = ImageStat.Stat(luma.filter(ImageFilter.FIND_EDGES)).mean[0]
    w, h = luma.size
    boxes = [
        (0, 0, w // 2 or 1, h // 2 or 1),
        (w // 2, 0, w, h // 2 or 1),
        (0, h // 2, w // 2 or 1, h),
        (w // 2, h // 2, w, h),
    ]
    means = [ImageStat.Stat(luma.crop(box)).mean[0] for box in boxes]
    return ImageFeatures(
        width=width,
        height=height,
        colours=colours or (PALETTE[ranked[0][0]][0],),
        brightness=round(stat.mean[0], 1),
        contrast=round(stat.stddev[0], 1),
        edge_score=round(edges, 1),
        brightest_quadrant=QUADRANTS[max(range(4), key=lambda i: (means[i], -i))],
    )


def _brightness_word(value: float) -> str:
    if value < 60:
        return "dark"
    if value < 110:
        return "dimly lit"
    return "moderately lit" if value < 170 else "bright"


def _contrast_word(value: float) -> str:
    if value < 25:
        return "low"
    return "moderate" if value < 60 else "high"


def _texture_word(value: float) -> str:
    if value < 8:
        return "smooth"
    return "fine-grained" if value < 25 else "busy and detailed"


def _colour_phrase(colours: Sequence[str]) -> str:
    if len(colours) == 1:
        return f"almost entirely {colours[0]}"
    if len(colours) == 2:
        return f"mostly {colours[0]} with {colours[1]}"
    return f"mostly {colours[0]} with {colours[1]} and some {colours[2]}"


def short_prompt(prompt: str) -> str:
    """Return the first few words of ``prompt``, for quoting it back in the answer."""
    words = re.sub(r"<image>", " ", prompt).split()
    text = " ".join(words[:PROMPT_ECHO_WORDS])
    if len(text) > PROMPT_ECHO_CHARS:
        text = text[:PROMPT_ECHO_CHARS].rstrip()
    return text + ("..." if text != " ".join(words) else "")


def describe(features: ImageFeatures, label: str = "The image") -> str:
    """Return two sentences about one image, starting with ``label``."""
    f = features
    return (
        f"{label} is a {f.orientation} {f.width}x{f.height} picture, {_colour_phrase(f.colours)}. "
        f"It looks {_brightness_word(f.brightness)} (mean brightness {f.brightness:.0f}/255) with "
        f"{_contrast_word(f.contrast)} contrast, its texture is {_texture_word(f.edge_score)} "
        f"(edge score {f.edge_score:.1f}), and the brightest area is the {f.brightest_quadrant}."
    )


def compose_answer(images: Sequence[ImageFeatures], prompt: str, system: str = "") -> str:
    """Write the answer to ``prompt`` about ``images``; the same inputs always give the same text."""
    seed = hashlib.sha256(f"{system}\n\x00{prompt}".encode()).digest()
    opener = OPENERS[seed[0] % len(OPENERS)]
    lowered = prompt.lower()
    remark = next((r for keys, r in FOCUS_REMARKS if any(k in lowered for k in keys)), DEFAULT_REMARK)
    if not images:
        body = "No image was provided, so only the question itself can be addressed."
    elif len(images) == 1:
        body = describe(images[0])
    else:
        body = " ".join(describe(f, f"Image {i}") for i, f in enumerate(images, 1))
    asked = short_prompt(prompt)
    question = f'As for "{asked}": ' if asked else "Without a question: "
    return f"{opener} {body} {question}{remark}."
