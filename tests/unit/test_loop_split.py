"""The loop's image split: seeded by content, a held-out image always, new images only ever join the pool."""

from __future__ import annotations

import hashlib

import pytest

from vqa_distill.errors import ConfigError
from vqa_distill.loop.split import split_images


def _shas(count: int) -> list[str]:
    return [hashlib.sha256(f"image {i}".encode()).hexdigest() for i in range(count)]


def test_the_split_is_the_same_for_the_same_images_and_seed_whatever_their_order() -> None:
    shas = _shas(20)
    first = split_images(shas, holdout_share=0.2, seed_share=0.3, seed_count=None, seed=7)
    again = split_images(
        list(reversed(shas)) + shas[:3], holdout_share=0.2, seed_share=0.3, seed_count=None, seed=7
    )
    assert first == again
    other = split_images(shas, holdout_share=0.2, seed_share=0.3, seed_count=None, seed=8)
    assert other.holdout != first.holdout  # the seed does choose


def test_every_image_is_in_exactly_one_part_with_the_shares_rounded_up() -> None:
    shas = _shas(20)
    split = split_images(shas, holdout_share=0.2, seed_share=0.3, seed_count=None, seed=1)
    assert (len(split.holdout), len(split.seed), len(split.pool)) == (4, 5, 11)  # ceil(20*.2), ceil(16*.3)
    assert sorted(split.holdout + split.seed + split.pool) == sorted(shas)
    assert split.training() == set(split.seed) | set(split.pool)
    assert not split.training() & set(split.holdout)


@pytest.mark.parametrize("count", [2, 3, 5])
@pytest.mark.parametrize("holdout_share", [0.01, 0.5, 0.99])
def test_one_image_is_held_out_and_one_trained_on_however_few(count: int, holdout_share: float) -> None:
    split = split_images(_shas(count), holdout_share=holdout_share, seed_share=0.01, seed_count=None, seed=3)
    assert len(split.holdout) >= 1 and len(split.seed) >= 1
    assert len(split.holdout) + len(split.seed) + len(split.pool) == count


def test_seed_count_overrides_the_share_up_to_what_is_left() -> None:
    assert len(split_images(_shas(10), holdout_share=0.2, seed_share=0.9, seed_count=3, seed=0).seed) == 3
    many = split_images(_shas(10), holdout_share=0.2, seed_share=0.1, seed_count=50, seed=0)
    assert (len(many.seed), many.pool) == (8, [])


def test_fewer_than_two_images_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 2 images"):
        split_images(_shas(1) * 3, holdout_share=0.2, seed_share=0.3, seed_count=None, seed=0)


def test_new_images_join_the_pool_only_once_each_and_known_ones_stay_where_they_were() -> None:
    split = split_images(_shas(10), holdout_share=0.2, seed_share=0.3, seed_count=None, seed=0)
    new = [hashlib.sha256(b"later").hexdigest(), hashlib.sha256(b"later 2").hexdigest()]
    grown = split.with_new([*split.holdout, *split.seed, new[0], new[0], *split.pool, new[1]])
    assert (grown.holdout, grown.seed) == (split.holdout, split.seed)
    assert grown.pool == split.pool + new
    assert split.with_new(split.holdout + split.seed + split.pool) == split
