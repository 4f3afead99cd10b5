"""Atomic writes: the new file whole, or the old one untouched and no temp file left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vqa_distill.atomic import atomic_write_bytes, atomic_write_lines, atomic_write_text


def test_lines_text_and_bytes_land_whole(tmp_path: Path) -> None:
    assert atomic_write_lines(tmp_path / "a" / "lines.jsonl", ["{}", '{"x": 1}']) == 2
    assert (tmp_path / "a" / "lines.jsonl").read_text() == '{}\n{"x": 1}\n'
    atomic_write_text(tmp_path / "t.json", "{}\n")
    assert (tmp_path / "t.json").read_text() == "{}\n"
    atomic_write_bytes(tmp_path / "b.jpg", b"\xff\xd8\xff")
    assert (tmp_path / "b.jpg").read_bytes() == b"\xff\xd8\xff"


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "responses.jsonl"
    atomic_write_lines(target, ["old"])

    def lines_then_a_crash() -> Iterator[str]:
        yield "new"
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        atomic_write_lines(target, lines_then_a_crash())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["responses.jsonl"]
