"""The run's gates, one per model that paces on its own: the teacher's, and the judge's when it is another model.

An endpoint limits each model apart (OpenAI's limits are per model), and a 429 says something about
the model it came from. So a judge of another model has its own gate, with its own limits, headers
and pace: a 429 on the judge neither slows the teacher nor lowers its limit, and the teacher's
traffic never spends the judge's allowance. A judge of the same model shares the teacher's gate, as
it shares the endpoint's limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from vqa_distill.teacher.ratelimit.gate import RateGate


class Gates:
    """The teacher's gate, and the gates of other models the run asks (the judge's)."""

    def __init__(self, teacher: RateGate, others: Mapping[str, RateGate] | None = None):
        """``others`` maps a model name, as requests name it, to its own gate."""
        self.teacher = teacher
        self._others = dict(others or {})

    def for_model(self, model: str) -> RateGate:
        """Return the gate that paces requests to ``model`` (the teacher's unless the model has its own)."""
        return self._others.get(model, self.teacher)

    def all(self) -> list[RateGate]:
        """Return every gate, the teacher's first."""
        return [self.teacher, *self._others.values()]
