"""Image preparation on camera-like JPEGs: every EXIF orientation upright, the budget kept, the pixels close
to a full-size reference although only the draft is decoded and the small image is turned."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vqa_distill.errors import ImageError
from vqa_distill.teacher.images.prepare import fit_within, prepare_image

MARK = (255, 0, 0)  # a red block in the top-left corner of the image as it is meant to be seen


def decoded(data_url: str) -> Image.Image:
    header, payload = data_url.split(",", 1)
    assert header == "data:image/jpeg;base64"
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert image.format == "JPEG"
    return image.convert("RGB")


def is_mark(pixel: object) -> bool:
    red, green, blue = pixel  # type: ignore[misc]
    return bool(red > 200 and green < 80 and blue < 80)


def textured(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A photo-like picture: a gradient, noise and a few hard edges (a flat image would hide resampling errors)."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 55, height, dtype=np.float32)[:, None, None]
    pixels = x + y + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    pixels[height // 3 : height // 2, width // 4 : width // 2] = (30, 200, 90)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def stored_with_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    """Return what a camera stores for ``upright`` with this EXIF orientation (the inverse of the viewer's turn)."""
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    return upright if inverse is None else upright.transpose(inverse)


def save_jpeg(image: Image.Image, path: Path, orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright_within_the_budget(tmp_path: Path, orientation: int) -> None:
    upright = textured((1200, 800), seed=orientation)
    upright.paste(MARK, (0, 0, 240, 160))
    path = save_jpeg(stored_with_orientation(upright, orientation), tmp_path / "photo.jpg", orientation)
    budget = 300 * 200
    prepared = prepare_image(path, max_pixels=budget)
    image = decoded(prepared.data_url)
    assert image.size == (prepared.width, prepared.height) == fit_within(1200, 800, budget) == (300, 200)
    stored = stored_with_orientation(upright, orientation).size
    assert (prepared.original_width, prepared.original_height) == stored
    assert is_mark(image.getpixel((20, 15))), f"orientation {orientation}: the mark is not top-left"
    assert not any(is_mark(image.getpixel(corner)) for corner in ((280, 15), (20, 185), (280, 185)))


def test_a_sideways_camera_photo_matches_the_full_size_reference(tmp_path: Path) -> None:
    upright = textured((1800, 2400), seed=7)  # a portrait shot, stored landscape with orientation 6
    path = save_jpeg(stored_with_orientation(upright, 6), tmp_path / "portrait.jpg", orientation=6)
    budget = 450 * 600
    prepared = prepare_image(path, max_pixels=budget)
    # The reference decodes every pixel, turns the full image, then resizes with LANCZOS.
    with Image.open(path) as source:
        reference = ImageOps.exif_transpose(source).convert("RGB").resize((450, 600), Image.Resampling.LANCZOS)
    ours = np.asarray(decoded(prepared.data_url), dtype=np.float32)
    error = np.mean((ours - np.asarray(reference, dtype=np.float32)) ** 2)
    psnr = 10 * np.log10(255**2 / error)
    assert psnr > 32, f"{psnr:.1f} dB from the full-size reference"


def test_the_draft_decode_never_goes_below_the_budget(tmp_path: Path) -> None:
    # 4000x3000 at a 0.79 MP budget: the 1/4 draft (1000x750) would be under 1024x768, so 1/2 is used.
    path = save_jpeg(textured((4000, 3000)), tmp_path / "big.jpg")
    prepared = prepare_image(path, max_pixels=1024 * 768)
    assert (prepared.width, prepared.height) == decoded(prepared.data_url).size == (1024, 768)
    assert (prepared.original_width, prepared.original_height) == (4000, 3000)


def test_a_large_png_is_downscaled_too(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    textured((3000, 2000)).save(path)
    prepared = prepare_image(path, max_pixels=600 * 400)
    assert decoded(prepared.data_url).size == (600, 400)


def test_an_image_within_the_budget_keeps_its_size(tmp_path: Path) -> None:
    path = save_jpeg(textured((320, 240)), tmp_path / "small.jpg", orientation=8)
    prepared = prepare_image(path, max_pixels=10**6)
    assert decoded(prepared.data_url).size == (240, 320) == (prepared.width, prepared.height)


def test_a_jpeg_cut_off_mid_stream_is_an_image_error(tmp_path: Path) -> None:
    whole = save_jpeg(textured((800, 600)), tmp_path / "whole.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        prepare_image(cut, max_pixels=200 * 150)


def test_a_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        prepare_image(tmp_path / "gone.jpg", max_pixels=10**6)
