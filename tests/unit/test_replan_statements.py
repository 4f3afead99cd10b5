"""Re-planning a folder costs a fixed number of ledger statements, however many images it holds.

Each statement the ledger's engine sends is counted (SQLAlchemy's ``before_cursor_execute``): on
PostgreSQL every one is a round trip, so a plan that asked for each image's cached hash apart cost
100,000 of them for 100,000 images.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.helpers import make_images
from vqa_distill.teacher.images import discovery
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.plan import RunPlan, plan_run


@pytest.fixture(autouse=True)
def _folder_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)


@contextmanager
def counted(ledger: Ledger) -> Iterator[list[str]]:
    """Collect the SQL of every statement the ledger sends meanwhile."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(ledger.store.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(ledger.store.engine, "before_cursor_execute", count)


def _replan(tmp_path: Path, count: int) -> tuple[RunPlan, list[str]]:
    """Plan a folder of ``count`` images once, then again; return the second plan and its statements."""
    images = make_images(tmp_path / f"images-{count}", count)
    params = TeacherParams(images=str(images[0].parent), out=str(tmp_path / f"run-{count}"), prompts=["Q?"])
    with Ledger(params.out) as ledger:
        plan_run(params, ledger)
        with counted(ledger) as sent:
            again = plan_run(params, ledger)
    return again, sent


def test_replanning_costs_the_same_few_statements_for_5_or_60_images(tmp_path: Path) -> None:
    small, few = _replan(tmp_path, 5)
    large, many = _replan(tmp_path, 60)
    assert (len(small.images), len(large.images)) == (5, 60)
    assert len(few) == len(many) <= 4, many  # the hash cache, done keys, in-flight keys: O(1), not O(images)
    assert not any("INSERT" in statement for statement in many)  # no unchanged hash is written again


def test_a_changed_file_is_hashed_again_and_only_it_is_written(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", 3)
    params = TeacherParams(images=str(tmp_path / "images"), out=str(tmp_path / "run"), prompts=["Q?"])
    with Ledger(params.out) as ledger:
        first = plan_run(params, ledger)
        make_images(tmp_path / "other", 1)[0].replace(images[1])  # new bytes under an old name
        hashed: list[Path] = []
        real = discovery.file_sha256

        def spy(path: Path) -> str:
            hashed.append(path)
            return real(path)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(discovery, "file_sha256", spy)
            with counted(ledger) as sent:
                again = plan_run(params, ledger)
        assert hashed == [images[1]]
        assert again.images[1].sha256 != first.images[1].sha256
        assert [ref.sha256 for i, ref in enumerate(again.images) if i != 1] == [
            ref.sha256 for i, ref in enumerate(first.images) if i != 1
        ]
        assert sum("INSERT" in statement for statement in sent) == 1
        assert ledger.known_hash(images[1], images[1].stat()) == again.images[1].sha256
