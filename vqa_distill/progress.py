"""A seam for progress reporting: the CLI listens (progress bar); the flow reports; nothing else knows."""

from __future__ import annotations

from collections.abc import Callable

ProgressListener = Callable[[int, int], None]  # (done, total)
_listeners: list[ProgressListener] = []


def add_listener(listener: ProgressListener) -> None:
    """Receive (done, total) each time a request of the running flow finishes."""
    _listeners.append(listener)


def remove_listener(listener: ProgressListener) -> None:
    """Stop receiving progress."""
    if listener in _listeners:
        _listeners.remove(listener)


def report(done: int, total: int) -> None:
    """Tell every listener how far the run is."""
    for listener in list(_listeners):
        listener(done, total)
