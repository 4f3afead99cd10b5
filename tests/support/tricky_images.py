"""Images that a plain ``Image.open(path).convert("RGB")`` (ms-swift's loader) shows differently than the
teacher's preparation does: an EXIF-rotated phone photo, a PNG with transparency, a 16-bit X-ray.

Each is small, unique to its folder (the task cache is keyed by content across tests), and made so that
the wrong reading is plain to see: the rotated one comes out sideways (its sides swapped), the glass dark
instead of light, the X-ray white instead of a grey ramp.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

from PIL import Image

from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.prepare import ORIENTATION_TAG, prepare_image

STORED_SIZE = (120, 80)  # the rotated photo as stored: landscape; upright (orientation 6) it is 80x120
ROTATED, ALPHA, SIXTEEN_BIT = "phone_rotated.jpg", "glass_alpha.png", "xray_16bit.png"


def _salt(folder: Path) -> bytes:
    return hashlib.sha256(str(folder.resolve()).encode()).digest()


def tricky_images(folder: Path) -> dict[str, Path]:
    """Write the three images into ``folder``; returns them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    salt = _salt(folder)

    # Stored landscape, left half red and right half blue; orientation 6 shows it portrait, red on top.
    photo = Image.new("RGB", STORED_SIZE, (200, 30, 30))
    photo.paste((30, 40, 200), (STORED_SIZE[0] // 2, 0, *STORED_SIZE))
    photo.putpixel((0, STORED_SIZE[1] - 1), tuple(salt[:3]))
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    photo.save(folder / ROTATED, format="JPEG", quality=95, exif=exif.tobytes())

    # Clear glass: black pixels, almost transparent (shown on white: light), with one opaque dark band.
    glass = Image.new("RGBA", (96, 96), (0, 0, 0, 12))
    glass.paste((20, 20, 30, 255), (0, 40, 96, 56))
    glass.putpixel((0, 0), (*salt[3:6], 255))
    glass.save(folder / ALPHA, format="PNG")

    # A 16-bit grey ramp, 0..65280 left to right: scaled to 8 bits, a ramp from black to near white.
    ramp = Image.linear_gradient("L").rotate(90).resize((128, 96))
    xray = ramp.point(lambda value: value * 256, mode="I")
    xray.putpixel((0, 0), int.from_bytes(salt[6:8], "big"))
    xray.convert("I;16").save(folder / SIXTEEN_BIT, format="PNG")
    return {ROTATED: folder / ROTATED, ALPHA: folder / ALPHA, SIXTEEN_BIT: folder / SIXTEEN_BIT}


def sent_to_teacher(path: Path, budget: int | PixelBudget) -> Image.Image:
    """The picture the teacher is sent for ``path``: its data URL decoded, as the teacher decodes it."""
    url = prepare_image(path, budget).data_url
    with Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:
        return image.convert("RGB")


def mean_grey(image: Image.Image) -> float:
    """The mean brightness of ``image``, 0-255."""
    grey = image.convert("L")
    return sum(value * count for value, count in enumerate(grey.histogram())) / (grey.width * grey.height)
