"""Waiting for a started process to be ready: it dies, it stays unready, it gets ready."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from vqa_distill.errors import FatalRunError
from vqa_distill.supervisor import ManagedProcess, wait_until


class Watched(ManagedProcess):
    """A started process as the supervisor sees it, alive until told otherwise (no child is started)."""

    alive = True

    def handle(self) -> psutil.Process | None:
        return psutil.Process() if self.alive else None


def _watched(tmp_path: Path, *, alive: bool) -> Watched:
    log = tmp_path / "server.log"
    log.write_text("listening...\nno config, giving up\n")
    process = Watched("server", 1, 0.0, ["server"], str(log))
    process.alive = alive
    return process


def test_a_process_that_dies_while_awaited_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(FatalRunError, match=r"the server exited during start-up; its log \(.*server\.log\)") as caught:
        wait_until(lambda: False, _watched(tmp_path, alive=False), 30.0, "the server")
    assert str(caught.value).endswith("\nlistening...\nno config, giving up\n")


def test_a_process_never_ready_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    with pytest.raises(FatalRunError, match=r"the server not ready after 1 s; its log \(.*server\.log\)") as caught:
        wait_until(lambda: False, _watched(tmp_path, alive=True), 1.0, "the server")
    assert str(caught.value).endswith("\nlistening...\nno config, giving up\n")


def test_a_process_ready_at_a_later_look_is_waited_for(tmp_path: Path) -> None:
    looks = iter([False, False, True])
    wait_until(lambda: next(looks), _watched(tmp_path, alive=True), 30.0, "the server")
    assert next(looks, None) is None
