"""Image estimates that learn from answers: what a model's images really cost, measured from ``usage``.

The gate charges each request its estimate before the call. For a model the table does not know, that
estimate starts cautious (the most expensive rule known), which would pace a relay's Qwen or Gemini
25 times below what its tokens per minute allow. So the first answers' ``prompt_tokens``, less the
text's estimate, are divided by each image's pixels; once ``CALIBRATION_SAMPLES`` are in, the median
(robust to one odd answer) becomes the model's tokens per pixel, and the run says so once.

A model the table knows keeps its published rule, but the same measurement checks it: when the median
answer disagrees with the rule by more than ``DISAGREEMENT``, one warning names both figures (the
model behind the name may have changed, or a relay bills by another rule). Either way each answer
still settles its own estimate with the gate, both ways.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from vqa_distill.teacher.run_log import run_logger

CALIBRATION_SAMPLES = 5  # answers measured before an estimate is adopted or a rule is checked
DISAGREEMENT = 0.2  # a known rule off by more than this share of the measured tokens is warned about
ROUNDING_DIGITS = 6  # 1001 tokens / 786,432 px * 786,432 px must be 1001, not 1002


@dataclass(frozen=True, slots=True)
class Measured:
    """One answer's image: its size as sent, the prompt tokens billed, and what the rule in use said."""

    width: int
    height: int
    prompt_tokens: int
    image_tokens: int  # prompt_tokens less the text's estimate, never below zero
    ruled_tokens: int  # what the table's rule (or the cautious one) estimated for this image

    @property
    def per_pixel(self) -> float:
        """Return the measured image tokens per pixel."""
        return self.image_tokens / (self.width * self.height)


class ImageCalibration:
    """One model's image estimate: the table's rule, or for an unknown model the tokens per pixel it measured."""

    def __init__(self, model: str, *, trusted: bool, samples: int = CALIBRATION_SAMPLES):
        """Calibrate ``model``; ``trusted`` models (the table knows them) are checked, never re-estimated."""
        self.model = model
        self.trusted = trusted
        self._wanted = samples
        self._samples: list[Measured] = []
        self.tokens_per_pixel: float | None = None  # adopted for an unknown model once measured

    @property
    def settled(self) -> bool:
        """Return whether enough answers were measured (an estimate adopted, or the rule checked)."""
        return len(self._samples) >= self._wanted

    def image_tokens(self, width: int, height: int, ruled_tokens: int) -> int:
        """Return the image's estimate: measured per pixel when adopted, else the rule's ``ruled_tokens``."""
        if self.tokens_per_pixel is None:
            return ruled_tokens
        return math.ceil(round(self.tokens_per_pixel * width * height, ROUNDING_DIGITS))

    def learn(self, width: int, height: int, *, prompt_tokens: int, text_tokens: int, ruled_tokens: int) -> None:
        """Take one answer's ``prompt_tokens`` for an image of ``width`` x ``height``; conclude at the last sample."""
        if self.settled or width <= 0 or height <= 0:
            return
        image = max(0, prompt_tokens - text_tokens)
        self._samples.append(Measured(width, height, prompt_tokens, image, ruled_tokens))
        if self.settled:
            self._conclude()

    def _conclude(self) -> None:
        if not self.trusted:
            typical = _median(self._samples, key=lambda s: s.per_pixel)
            self.tokens_per_pixel = typical.per_pixel
            run_logger().info(
                "%s: ~%s tokens per %d×%d image measured; estimate adopted",
                self.model, f"{typical.prompt_tokens:,}", typical.width, typical.height,
            )  # fmt: skip
            return
        checked = [s for s in self._samples if s.ruled_tokens > 0]
        if not checked:
            return
        typical = _median(checked, key=lambda s: s.image_tokens / s.ruled_tokens)
        if abs(typical.image_tokens / typical.ruled_tokens - 1) > DISAGREEMENT:
            run_logger().warning(
                "%s: answers bill ~%s image tokens per %d×%d image where the model table's rule says %s: the "
                "model may have changed (the table's rule is kept; each answer's usage corrects the rate gate)",
                self.model, f"{typical.image_tokens:,}", typical.width, typical.height, f"{typical.ruled_tokens:,}",
            )  # fmt: skip


def _median(samples: list[Measured], key: Callable[[Measured], float]) -> Measured:
    """Return the median sample by ``key`` (the upper middle one of an even count: the cautious side)."""
    ordered = sorted(samples, key=key)
    return ordered[len(ordered) // 2]
