"""Prepare one image for the teacher: upright, RGB, within a pixel budget, as a data URL whose MIME
matches its bytes.

OpenAI fits a high-detail image into 2048x2048 and bills 512-px tiles of a 768-px shortest side, so
sending a 12 MP photo at full size only costs upload time; JPEG's draft mode decodes it at 1/2..1/8
scale, which is most of the speed-up (docs/architecture.md, "Measured facts"). Pillow releases the GIL, so callers run this in
worker threads.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from vqa_distill.errors import ImageError

JPEG_QUALITY = 90
OUTPUT_MIME = "image/jpeg"
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The image as it will be sent: size after resizing, JPEG bytes, and the data URL."""

    width: int
    height: int
    original_width: int
    original_height: int
    data_url: str


def fit_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Return the largest size with the same aspect ratio and at most ``max_pixels`` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode (CMYK, palette, alpha, 16-bit, grey) to 8-bit RGB; alpha goes onto white."""
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def prepare_image(path: str | Path, max_pixels: int) -> PreparedImage:
    """Decode, orient, convert and downscale an image file; raise ImageError saying why it failed."""
    try:
        with Image.open(path) as source:
            original_width, original_height = source.size
            swapped = _swaps_sides(source)
            oriented = (original_height, original_width) if swapped else (original_width, original_height)
            width, height = fit_within(*oriented, max_pixels)
            if source.format == "JPEG":
                # Decode at a reduced scale, never below the target (draft works on the stored sides).
                source.draft("RGB", (height, width) if swapped else (width, height))
            source.load()
            image = ImageOps.exif_transpose(source)
            image = to_rgb(image)
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    except FileNotFoundError as exc:
        raise ImageError(f"file not found: {path}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not a decodable image (unrecognised format)") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return PreparedImage(
        width=width,
        height=height,
        original_width=original_width,
        original_height=original_height,
        data_url=f"data:{OUTPUT_MIME};base64,{encoded}",
    )


def _swaps_sides(image: Image.Image) -> bool:
    """Tell whether the EXIF orientation rotates by 90 or 270 degrees (width and height swap)."""
    return image.getexif().get(0x0112, 1) in {5, 6, 7, 8}
