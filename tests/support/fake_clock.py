"""A virtual clock for the rate gate: sleeping moves time forward at once, so tests never wait."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Virtual monotonic time; ``sleep`` advances it by the amount asked and yields to the loop."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        """Return the virtual time in seconds."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Advance the virtual time by ``seconds``."""
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass outside the gate."""
        self.t += seconds
