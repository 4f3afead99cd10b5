"""Decoding of the images a chat request carries, with the checks a strict vision API makes.

A data URL whose bytes do not decode, or whose declared MIME type is not the format of its bytes, is
refused: the product must label what it sends truthfully, and this is where tests prove that it does.
Decoding is CPU work: the server calls ``decode_image_url`` in a worker thread (Pillow releases the GIL).
"""

from __future__ import annotations

import binascii
import hashlib
import io
import warnings
from base64 import b64decode
from dataclasses import dataclass

from PIL import Image

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's per-image upload limit
THUMBNAIL_SIDE_PX = 64  # answers look at a small copy: enough for colours, brightness and texture
MIME_BY_FORMAT: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
SUPPORTED_MIME = frozenset(MIME_BY_FORMAT.values())


class ImageRejected(Exception):
    """Raised when an image part cannot be used; ``code`` is the OpenAI-style error code."""

    def __init__(self, message: str, code: str = "invalid_image") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class DecodedImage:
    """One image as received: its real size and format, its fingerprint and a small RGB copy."""

    width: int
    height: int
    mime: str
    detail: str
    fingerprint: str  # sha256 of size + RGB pixels: the same picture gives the same value
    thumbnail: Image.Image

    @property
    def size_text(self) -> str:
        """Return the size as ``"WxH"``, the form fault rules match on."""
        return f"{self.width}x{self.height}"


def split_data_url(url: str) -> tuple[str, bytes]:
    """Return ``(declared_mime, raw_bytes)`` of a base64 data URL, or raise ImageRejected."""
    if url.startswith(("http://", "https://")):
        raise ImageRejected(
            "This offline teacher cannot fetch image URLs; send the image inline as a base64 data: URL.",
            code="invalid_image_url",
        )
    if not url.startswith("data:"):
        raise ImageRejected("image_url.url must be a base64 data: URL.", code="invalid_image_url")
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise ImageRejected("Malformed data URL: no ',' after the media type.", code="invalid_image_url")
    params = header.split(";")
    mime = params[0].strip().lower()
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise ImageRejected("Data URL must be base64-encoded (';base64,').", code="invalid_image_url")
    if mime not in SUPPORTED_MIME:
        raise ImageRejected(
            f"Unsupported image MIME type {mime!r}; use one of {sorted(SUPPORTED_MIME)}.",
            code="invalid_image_format",
        )
    try:
        raw = b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(f"The data URL's base64 payload is invalid: {exc}.") from exc
    if len(raw) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"Image is {len(raw)} bytes; the limit is {MAX_IMAGE_BYTES}.")
    return mime, raw


def fingerprint_of(rgb: Image.Image) -> str:
    """Return the sha256 hex of an RGB image's size and pixel bytes."""
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def decode_image_url(url: str, detail: str) -> DecodedImage:
    """Decode one ``image_url`` part fully, checking that its declared MIME matches its bytes."""
    declared, raw = split_data_url(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                actual = MIME_BY_FORMAT.get(im.format or "")
                if actual is None:
                    raise ImageRejected(
                        f"Image format {im.format} is not supported; use one of {sorted(SUPPORTED_MIME)}.",
                        code="invalid_image_format",
                    )
                if actual != declared:
                    raise ImageRejected(
                        f"The data URL declares {declared} but the bytes are {actual} ({im.format}).",
                    )
                im.load()  # decodes every pixel: truncated or corrupt files fail here
                rgb = im if im.mode == "RGB" else im.convert("RGB")
    except ImageRejected:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageRejected(f"The image bytes could not be decoded: {exc}.") from exc
    scale = THUMBNAIL_SIDE_PX / max(rgb.width, rgb.height)
    thumb_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return DecodedImage(
        width=rgb.width,
        height=rgb.height,
        mime=declared,
        detail=detail,
        fingerprint=fingerprint_of(rgb),
        thumbnail=rgb.resize(thumb_size, Image.Resampling.BOX),
    )
