"""Which images are held out, which seed round 0, which wait in the pool: chosen once, by content, seeded.

The order is a seeded shuffle of the images' sha256, so renaming or moving files changes nothing and
the same folder and seed give the same split. The split is written into the loop's state at round 0
and read back from there afterwards: images added to the folder later join the pool, never the
held-out set, whose verdicts must stay comparable from round to round.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from pydantic import BaseModel

from vqa_distill.errors import ConfigError


class ImageSplit(BaseModel):
    """Image sha256s: held out (judged, never trained on), seed (round 0's teacher), pool (unlabelled)."""

    holdout: list[str]
    seed: list[str]
    pool: list[str]

    def training(self) -> set[str]:
        """Every image the student may be trained on."""
        return set(self.seed) | set(self.pool)

    def with_new(self, shas: Sequence[str]) -> ImageSplit:
        """This split with images not seen before added to the pool (each once, in the order given)."""
        known = set(self.holdout) | set(self.seed) | set(self.pool)
        return self.model_copy(update={"pool": self.pool + [s for s in dict.fromkeys(shas) if s not in known]})


def split_images(shas: Sequence[str], *, holdout_share: float, seed_share: float, seed_count: int | None, seed: int) -> ImageSplit:
    """Split unique image hashes; ConfigError when there are too few to hold out one and seed one."""
    unique = sorted(set(shas))
    if len(unique) < 2:
        raise ConfigError(f"the loop needs at least 2 images (one held out, one to train on); found {len(unique)}")
    random.Random(seed).shuffle(unique)
    held = min(len(unique) - 1, max(1, math.ceil(len(unique) * holdout_share)))
    rest = unique[held:]
    seeded = min(len(rest), max(1, seed_count if seed_count is not None else math.ceil(len(rest) * seed_share)))
    return ImageSplit(holdout=unique[:held], seed=rest[:seeded], pool=rest[seeded:])
