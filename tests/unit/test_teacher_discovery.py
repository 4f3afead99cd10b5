"""Discovery and image preparation: a messy real folder in, the right candidates and pixels out."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.support.helpers import build_mixed_folder, make_image
from vqa_distill.errors import ConfigError, ImageError
from vqa_distill.teacher.images.discovery import discover_images
from vqa_distill.teacher.images.prepare import fit_within, prepare_image


def test_discovery_takes_images_by_content_and_survives_a_symlink_loop(tmp_path: Path) -> None:
    paths = build_mixed_folder(tmp_path)
    images, skipped = discover_images(tmp_path)
    found = {Path(ref.path).name: ref for ref in images}
    assert set(found) == {
        "valid.png", "really_a_jpeg.png", "photo_without_suffix", "ünïcode name 1.jpg", "copy of valid.png",
        "truncated.jpg", "not_an_image.jpg", "empty.png",
    }
    assert found["really_a_jpeg.png"].mime == "image/jpeg"  # by content, not by name
    assert found["photo_without_suffix"].mime == "image/png"
    assert found["not_an_image.jpg"].mime is None  # named like an image: kept, to fail loudly later
    assert found["valid.png"].sha256 == found["copy of valid.png"].sha256
    assert [Path(s.path).name for s in skipped] == ["notes.txt"]
    assert not any(".hidden" in ref.path or ".cache" in ref.path for ref in images)
    assert found["ünïcode name 1.jpg"].rel_path == "nested/deeper/ünïcode name 1.jpg"
    assert paths["valid"].exists()


def test_a_run_folder_inside_the_images_folder_is_never_walked(tmp_path: Path) -> None:
    """Its images/ holds the pictures the teacher was sent, its checkpoints plots: not new images to pay for."""
    make_image(tmp_path / "photo.png", (200, 30, 30))
    make_image(tmp_path / "runs" / "x" / "images" / "ab12-2359296.jpg", (30, 200, 30))
    make_image(tmp_path / "runs" / "x" / "checkpoints" / "loss.png", (30, 30, 200))
    make_image(tmp_path / "runs" / "other.png", (90, 90, 90))  # beside the run folder: still an image of the folder
    images, _ = discover_images(tmp_path, run_folder=tmp_path / "runs" / "x")
    assert sorted(ref.rel_path for ref in images) == ["photo.png", "runs/other.png"]
    everything, _ = discover_images(tmp_path)
    assert len(everything) == 4


def test_discovery_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        discover_images(tmp_path / "nope")


def decode_data_url(data_url: str) -> tuple[str, Image.Image]:
    header, payload = data_url.split(",", 1)
    mime = header.removeprefix("data:").removesuffix(";base64")
    return mime, Image.open(io.BytesIO(base64.b64decode(payload)))


def test_prepare_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (300, 100), (200, 200, 200))
    image.paste((255, 0, 0), (0, 0, 30, 100))  # a red band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    image.save(path, exif=exif.tobytes(), quality=95)
    prepared = prepare_image(path, max_pixels=10**7)
    mime, decoded = decode_data_url(prepared.data_url)
    assert (prepared.width, prepared.height) == decoded.size == (100, 300)
    top_middle = decoded.convert("RGB").getpixel((50, 5))
    assert top_middle[0] > 200 and top_middle[1] < 60  # the red band is now on top
    assert mime == "image/jpeg" and decoded.format == "JPEG"


@pytest.mark.parametrize(
    ("mode", "fmt"), [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("L", "TIFF"), ("RGB", "WEBP")]
)
def test_prepare_converts_every_mode_to_rgb_jpeg(tmp_path: Path, mode: str, fmt: str) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    if mode == "I;16":
        source = Image.linear_gradient("L").point(lambda v: v * 256, mode="I").convert("I;16")
    else:
        source = Image.new("RGB", (256, 256), (30, 140, 220)).convert(mode)
    source.save(path, format=fmt)
    prepared = prepare_image(path, max_pixels=10**7)
    mime, decoded = decode_data_url(prepared.data_url)
    assert mime == "image/jpeg" and decoded.format == "JPEG" and decoded.mode == "RGB"
    if mode == "I;16":
        # 16-bit grey is scaled, not clipped: the gradient keeps its dark half.
        assert decoded.getpixel((128, 10))[0] < 40 and decoded.getpixel((128, 250))[0] > 200


def test_prepare_downscales_a_large_photo_to_the_pixel_budget(tmp_path: Path) -> None:
    path = make_image(tmp_path / "huge.jpg", (100, 150, 200), size=(4000, 4000))
    prepared = prepare_image(path, max_pixels=1536 * 1536)
    _, decoded = decode_data_url(prepared.data_url)
    assert decoded.size == (1536, 1536) == (prepared.width, prepared.height)
    assert (prepared.original_width, prepared.original_height) == (4000, 4000)
    assert fit_within(4000, 3000, 1_000_000) == (1154, 866)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_prepare_reports_why_an_image_does_not_decode(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="decod"):
        prepare_image(path, max_pixels=10**6)
