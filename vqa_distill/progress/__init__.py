"""Progress of the running flow: the work feeds one ``Tally``; the CLI's bar and the Prefect artifacts read it.

The seam has two halves. A live reporter (``teacher/run/live.py``) sets up the run's tally with
``tallying``; the work asks for it with ``begin(items)`` (a fan-out that runs without a reporter
gets a tally of its own) and calls ``report`` as items finish, which the CLI's listeners hear.
Nothing here knows of Prefect, prices or the terminal: ``tally`` counts, ``text`` words the numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from vqa_distill.progress.tally import Outcome, Snapshot, Tally

__all__ = [
    "Outcome",
    "ProgressListener",
    "Snapshot",
    "Tally",
    "add_listener",
    "begin",
    "remove_listener",
    "report",
    "tallying",
]

ProgressListener = Callable[[Tally], None]
_listeners: list[ProgressListener] = []
# A context variable, not a global: flow runs sharing a process (tests, a served deployment) keep theirs apart.
_current: ContextVar[Tally | None] = ContextVar("vqa_distill_progress_tally", default=None)


def add_listener(listener: ProgressListener) -> None:
    """Receive the tally each time an item of the running flow finishes."""
    _listeners.append(listener)


def remove_listener(listener: ProgressListener) -> None:
    """Stop receiving progress."""
    if listener in _listeners:
        _listeners.remove(listener)


def report(tally: Tally) -> None:
    """Tell every listener how far the run is."""
    for listener in list(_listeners):
        listener(tally)


@contextlib.contextmanager
def tallying(tally: Tally) -> Iterator[Tally]:
    """Make ``tally`` the one ``begin`` hands out until the block ends (the live reporter's)."""
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def begin(items: int) -> Tally:
    """Return the run's tally with ``items`` more to do: the live reporter's, else a new one."""
    tally = _current.get()
    if tally is None:
        tally = Tally()
    tally.extend(items)
    return tally
