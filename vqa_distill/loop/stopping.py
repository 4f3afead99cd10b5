"""Why the loop stops after a round: the rounds asked for are done, the budget affords no more, the gain is too small.

The reason is weighed after every round and again when a stopped loop is started anew: a loop that
stopped at ``rounds`` or at its budget goes on when it is restarted with more rounds or a larger
budget, and one restarted with fewer rounds stops at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.state import RoundRecord

STOP_ROUNDS, STOP_BUDGET = "rounds", "budget"


def stop_reason(params: DistillParams, rounds: Sequence[RoundRecord], affordable: int | None) -> str | None:
    """Why the loop stops after the last of ``rounds`` (None: it goes on; ``affordable``: units the budget allows)."""
    if not rounds:
        return None
    record = rounds[-1]
    if record.round + 1 >= params.rounds:
        return STOP_ROUNDS
    if affordable == 0:
        return STOP_BUDGET
    last = rounds[-2] if len(rounds) > 1 else None
    if params.min_gain <= 0 or last is None or last.win_or_tie is None or record.win_or_tie is None:
        return None
    gain = record.win_or_tie - last.win_or_tie
    return f"gain {gain:+.2f} < {params.min_gain}" if gain < params.min_gain else None
