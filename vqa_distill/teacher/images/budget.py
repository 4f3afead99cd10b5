"""How many pixels to send, and in what shape: the run's budget, narrowed to what the teacher's model keeps.

A model resizes what it is sent before it bills or sees it (docs/models.md): Qwen to sides that are
multiples of 28 within its pixel budget, Claude to 1,568 px on the long edge and ~1.15 MP. Sending
more only costs upload time, and sending another shape makes the estimate a guess, so the image is
prepared to the very size the model would resize it to. The model table (``endpoint/image_rules.py``)
says which budget each family has; this module only does the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FLOAT_SLACK = 1e-9  # 3000 * (1568 / 3000) must floor to 1568, not 1567


def fit_within(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Return the largest size with the same aspect ratio and at most ``max_pixels`` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


@dataclass(frozen=True, slots=True)
class PixelBudget:
    """At most ``max_pixels`` pixels and ``max_side`` px a side; sides a multiple of ``multiple`` when above 1.

    With a ``multiple``, the size is Qwen's ``smart_resize``: each side rounded to the nearest multiple,
    then scaled down (to multiples below) when over ``max_pixels`` or up when under ``min_pixels``.
    """

    max_pixels: int
    max_side: int | None = None
    multiple: int = 1
    min_pixels: int = 1

    def target(self, width: int, height: int) -> tuple[int, int]:
        """Return the size an image of ``width`` x ``height`` is sent at."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if self.multiple > 1:
            return self._on_the_grid(width, height)
        w, h = fit_within(width, height, self.max_pixels)
        if self.max_side is None or max(w, h) <= self.max_side:
            return w, h
        # The long edge binds harder than the area: one scale from the original size, the long edge exact.
        scale = self.max_side / max(width, height)
        return self._scaled(width, scale), self._scaled(height, scale)

    def _scaled(self, side: int, scale: float) -> int:
        return max(1, min(self.max_side or side, math.floor(side * scale + FLOAT_SLACK)))

    def _on_the_grid(self, width: int, height: int) -> tuple[int, int]:
        """Qwen's ``smart_resize`` (qwen_vl_utils.vision_process), never a side below one multiple."""
        m = self.multiple
        w, h = max(m, round(width / m) * m), max(m, round(height / m) * m)
        if w * h > self.max_pixels:
            beta = math.sqrt(width * height / self.max_pixels)
            w, h = max(m, math.floor(width / beta / m) * m), max(m, math.floor(height / beta / m) * m)
        elif w * h < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (width * height))
            w, h = math.ceil(width * beta / m) * m, math.ceil(height * beta / m) * m
        return w, h
