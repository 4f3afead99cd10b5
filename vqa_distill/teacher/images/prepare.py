"""Prepare one image for the teacher: upright, RGB, within a pixel budget, as a data URL whose MIME
matches its bytes.

OpenAI fits a high-detail image into 2048x2048 and bills 512-px tiles of a 768-px shortest side, so
sending a 12 MP photo at full size only costs upload time; other families keep other sizes, and the
image is sent at the one its model keeps (``budget.py``). The pixels are touched as few times as
possible, because preparing a photo is most of a run's CPU (docs/performance.md, "Preparing one photo"):
JPEG's draft mode decodes at 1/2..1/8 scale, one resize brings the draft to the budget, and the EXIF
orientation is applied to the small result, never to the full decode. Pillow releases the GIL while
it decodes, resizes and (into a file descriptor) encodes, so callers run this in worker threads.

The dataset's copy of an image (vqa_distill/dataset/pictures.py) is these same JPEG bytes, written to
the run folder: the student reads the pixels the teacher was sent, not the original file.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from vqa_distill.errors import ImageError
from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.budget import fit_within as fit_within  # where callers have always found it

JPEG_QUALITY = 90
OUTPUT_MIME = "image/jpeg"
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Chosen by measurement on 12 MP photos (docs/performance.md): after a draft decode the remaining
# reduction is under 2x, where HAMMING costs what BILINEAR costs, 31 ms less than LANCZOS, and at
# quality 90 the result is as close to a full-decode LANCZOS reference as LANCZOS at quality 85.
RESAMPLE = Image.Resampling.HAMMING
REDUCING_GAP = 3.0  # a PNG or TIFF (no draft) far above the budget is first box-reduced, then filtered
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_SIDES = frozenset({5, 6, 7, 8})  # orientations that turn the image by 90 or 270 degrees


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The image as it will be sent: size after resizing, JPEG bytes, and the data URL."""

    width: int
    height: int
    original_width: int
    original_height: int
    data_url: str

    @property
    def jpeg(self) -> bytes:
        """The JPEG the data URL carries: the pixels the teacher decodes, and the dataset's copy of them."""
        return base64.b64decode(self.data_url.partition(",")[2])


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


def prepare_image(path: str | Path, max_pixels: int | PixelBudget) -> PreparedImage:
    """Decode, resize, orient and convert an image file; raise ImageError saying why it failed.

    ``max_pixels`` is the run's pixel count, or the teacher model's ``PixelBudget``, which also says
    the shape the model keeps (Qwen: sides a multiple of 28).
    """
    shape = max_pixels if isinstance(max_pixels, PixelBudget) else PixelBudget(max_pixels)
    try:
        with Image.open(path) as source:
            original_width, original_height = source.size
            orientation = source.getexif().get(ORIENTATION_TAG, 1)
            swapped = orientation in SWAPS_SIDES
            oriented = (original_height, original_width) if swapped else (original_width, original_height)
            width, height = shape.target(*oriented)
            stored = (height, width) if swapped else (width, height)  # the target in the file's own sides
            if source.format == "JPEG":
                source.draft("RGB", stored)  # decode at a reduced scale, never below the target
            image = to_rgb(source)
            if image.size != stored:
                image = image.resize(stored, RESAMPLE, reducing_gap=REDUCING_GAP)
            if orientation in UPRIGHT:
                image = image.transpose(UPRIGHT[orientation])  # on the small image: a cheap pass
            jpeg = encode_jpeg(image)
    except FileNotFoundError as exc:
        raise ImageError(f"file not found: {path}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not a decodable image (unrecognised format)") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    encoded = base64.b64encode(jpeg).decode("ascii")
    return PreparedImage(
        width=width,
        height=height,
        original_width=original_width,
        original_height=original_height,
        data_url=f"data:{OUTPUT_MIME};base64,{encoded}",
    )


def encode_jpeg(image: Image.Image) -> bytes:
    """Return ``image`` as JPEG bytes, encoded with the GIL released.

    Pillow holds the GIL while it encodes into a ``BytesIO`` (about 6 ms for 2.4 MP, during which the
    flow's event loop cannot run) and releases it while it encodes into a file descriptor; an
    in-memory file costs 0.3 ms more CPU and lets the loop and the other preparing thread run.
    """
    with _scratch_file() as scratch:
        image.save(scratch, format="JPEG", quality=JPEG_QUALITY, optimize=False)
        scratch.seek(0)
        return scratch.read()


def _scratch_file() -> IO[bytes]:
    """An anonymous file in memory (Linux), else a temporary file that is gone once closed."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("prepared-jpeg"), "w+b")  # closed by the caller's with
    return tempfile.TemporaryFile()
