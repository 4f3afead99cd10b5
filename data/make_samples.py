"""Regenerate the sample images in data/images: synthetic "inspection" photos, made here, free of any licence.

Each sample exercises one thing the teacher stage must handle: formats (JPEG, PNG, WebP, GIF, BMP,
TIFF), modes (CMYK, palette, RGBA, 16-bit grey), an EXIF rotation and a large photo to downscale.
Run: python data/make_samples.py
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).parent / "images"


def surface(size: tuple[int, int], base: tuple[int, int, int], seed: int) -> Image.Image:
    """A brushed-metal-like surface: a gradient with fine random streaks."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 2):
        shade = int(18 * math.sin(y / height * math.pi)) + rng.randint(-6, 6)
        colour = tuple(max(0, min(255, c + shade)) for c in base)
        draw.line([(0, y), (width, y)], fill=colour, width=2)
    return image.filter(ImageFilter.GaussianBlur(1))


def scratch(image: Image.Image, seed: int, count: int = 3) -> Image.Image:
    """Draw dark scratches (the "defects" the sample prompt asks about)."""
    rng = random.Random(seed)
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(count):
        x, y = rng.randint(0, width), rng.randint(0, height)
        points = [(x, y)]
        for _ in range(6):
            x += rng.randint(-width // 8, width // 8)
            y += rng.randint(-height // 10, height // 10)
            points.append((x, y))
        draw.line(points, fill=(40, 35, 30), width=max(2, width // 300))
    return image


def spots(image: Image.Image, seed: int, colour: tuple[int, int, int], count: int = 5) -> Image.Image:
    """Draw round stains or holes."""
    rng = random.Random(seed)
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(count):
        radius = rng.randint(width // 60, width // 20)
        x, y = rng.randint(radius, width - radius), rng.randint(radius, height - radius)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    nested = OUT / "line 2"
    nested.mkdir(exist_ok=True)
    scratch(surface((1024, 768), (170, 172, 176), 1), 11).save(OUT / "steel_plate_scratches.jpg", quality=88)
    spots(surface((1024, 768), (150, 110, 70), 2), 12, (60, 40, 25)).save(OUT / "wood_panel_stains.png")
    spots(surface((800, 800), (200, 60, 60), 3), 13, (250, 250, 245), 3).save(OUT / "red_fabric_holes.webp", quality=85)
    spots(surface((640, 480), (60, 120, 200), 4), 14, (20, 20, 20), 8).convert("P", palette=Image.Palette.ADAPTIVE).save(
        OUT / "blue_tile_chips.gif"
    )
    scratch(surface((640, 480), (90, 160, 90), 5), 15).save(OUT / "green_circuit_board.bmp")
    scratch(surface((800, 600), (200, 200, 190), 6), 16, 1).save(OUT / "ceramic_cup_crack.tiff", compression="tiff_lzw")
    big = scratch(surface((4000, 3000), (120, 124, 130), 7), 17, 6)
    big.save(OUT / "large_aluminium_sheet.jpg", quality=80)
    rotated = scratch(surface((900, 600), (180, 160, 120), 8), 18)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90 degrees clockwise)
    rotated.save(OUT / "phone_photo_rotated.jpg", quality=88, exif=exif.tobytes())
    scratch(surface((700, 500), (210, 190, 40), 9), 19).convert("CMYK").save(nested / "yellow_paint_cmyk.jpg", quality=88)
    rgba = spots(surface((600, 600), (80, 80, 90), 10), 20, (230, 230, 230)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((600, 600)))
    rgba.save(nested / "glass_with_alpha.png")
    grey16 = Image.linear_gradient("L").resize((512, 512)).point(lambda v: v * 256, mode="I").convert("I;16")
    grey16.save(nested / "xray_16bit.png")
    spots(surface((800, 600), (140, 140, 140), 11), 21, (30, 30, 30), 2).save(nested / "concrete slab – ünïcode.jpg", quality=88)


if __name__ == "__main__":
    main()
