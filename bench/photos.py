"""Camera-like 12 MP JPEG photos for the benchmarks, generated once and cached.

A flat-colour JPEG decodes in a few milliseconds because its entropy-coded data is tiny; a camera's
photo is 3-5 MB of noise, texture and edges, and decoding that data is most of what preparing it
costs. So the photos here have what makes a real one expensive: a smooth illumination field,
mid-frequency texture (foliage, fabric, gravel), hard-edged shapes, sensor noise, 4:2:0 chroma at
quality 92 (a phone's default), an EXIF block with a camera name, and every eighth one stored sideways
with EXIF orientation 6 (a portrait shot), so the orientation path is paid for too.

Every photo differs in its bytes (the teacher cache is keyed by content). Generating costs about half
a second per photo; the folder is cached under the user's cache directory by count and version.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PHOTO_SIZE = (4000, 3000)  # 12 MP, 4:3, as a phone's main camera
PHOTO_QUALITY = 92
PORTRAIT_EVERY = 8  # every eighth photo is stored landscape with EXIF orientation 6
GENERATOR_VERSION = 1  # bump when the photos change, so a stale cache is not reused
CAMERA_MAKE, CAMERA_MODEL = "BenchCam", "BC-12"
SENSOR_NOISE_SIGMA = 5.0  # grey levels; a phone at ISO 200-400
TEXTURE_SIGMA = 22.0
TEXTURE_SCALE = 6  # texture cells of 6x6 px: fine detail a downscale must resolve
SHAPES = 80


def cache_root() -> Path:
    """Return where generated photos are kept between benchmark runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vqa-distill-bench"


def photo_folder(count: int, root: Path | None = None) -> Path:
    """Return a folder of ``count`` distinct 12 MP photos, generating only the ones not cached yet."""
    folder = (root or cache_root()) / f"photos-v{GENERATOR_VERSION}-{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [index for index in range(count) if not (folder / f"photo_{index:05d}.jpg").exists()]
    if missing:  # the noise bank is 75 MB: made only when a photo is missing (a child inherits peak RSS)
        noise = _noise_bank(np.random.default_rng(0))
        for index in missing:
            write_photo(folder / f"photo_{index:05d}.jpg", index, noise)
    return folder


def photo_paths(count: int, root: Path | None = None) -> list[Path]:
    """Return the first ``count`` cached photos (generated on first use), sorted."""
    folder = photo_folder(count, root)
    return [folder / f"photo_{index:05d}.jpg" for index in range(count)]


def write_photo(path: Path, index: int, noise: np.ndarray) -> None:
    """Write photo number ``index`` (deterministic for a given index) to ``path``, atomically."""
    rng = np.random.default_rng(1000 + index)
    width, height = PHOTO_SIZE
    image = _illumination(rng, width, height)
    _draw_shapes(ImageDraw.Draw(image), rng, width, height)
    pixels = np.asarray(image, dtype=np.int16)
    texture = _texture(rng, width, height)
    dy, dx = (int(v) for v in rng.integers(0, 64, 2))
    grain = noise[dy : dy + height, dx : dx + width]
    pixels += texture[:, :, None]
    pixels += grain
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = CAMERA_MAKE, CAMERA_MODEL
    if index % PORTRAIT_EVERY == PORTRAIT_EVERY - 1:
        exif[0x0112] = 6  # stored landscape, shown portrait: the viewer rotates 90 degrees clockwise
    partial = path.with_name(f".{path.name}.partial")
    photo.save(partial, format="JPEG", quality=PHOTO_QUALITY, subsampling="4:2:0", exif=exif.tobytes())
    partial.replace(path)


def _noise_bank(rng: np.random.Generator) -> np.ndarray:
    """Sensor noise a little larger than a photo; each photo takes a shifted window of it."""
    width, height = PHOTO_SIZE
    return rng.normal(0.0, SENSOR_NOISE_SIGMA, (height + 64, width + 64, 3)).astype(np.int16)


def _illumination(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth colour field (sky, walls, light falloff): a tiny random image upscaled bicubically."""
    coarse = rng.integers(20, 236, (4, 5, 3), dtype=np.uint8)
    return Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Mid-frequency luminance texture, stronger in some regions than others (as foliage beside sky)."""
    cells = rng.normal(0.0, TEXTURE_SIGMA, (height // TEXTURE_SCALE, width // TEXTURE_SCALE)).astype(np.float32)
    texture = Image.fromarray(cells, "F").resize((width, height), Image.Resampling.BILINEAR)
    mask = Image.fromarray(rng.random((3, 4)).astype(np.float32), "F").resize((width, height), Image.Resampling.BICUBIC)
    return (np.asarray(texture) * np.asarray(mask)).astype(np.int16)


def _draw_shapes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """Hard edges: boxes, ellipses and lines of random colours (buildings, objects, wires)."""
    for _ in range(SHAPES):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + (x1 - x0) // 3, y0 + (y1 - y0) // 3), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
