"""Fault injection: rules that make chosen requests fail the way a real API fails.

A rule fires at most ``times`` times per request key (image fingerprints + user text + system + model),
so ``{"kind": "503", "times": 2}`` makes every distinct request fail twice and then succeed: exactly
what a test of "transient errors are retried" needs, whatever order the requests arrive in.
The first rule that matches and fires wins.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FaultKind = Literal[
    "429",  # rate limited (Retry-After header when retry_after is set)
    "500",  # internal server error
    "502",  # bad gateway
    "503",  # overloaded (Retry-After header when retry_after is set)
    "400",  # the request is refused as invalid
    "bad_json",  # HTTP 200 whose body is not valid JSON
    "truncate",  # a cut-off answer with finish_reason "length"
    "content_filter",  # finish_reason "content_filter" and null content
    "empty",  # finish_reason "stop" and empty content
    "timeout",  # the answer comes only after delay_s (longer than any client timeout)
    "refuse",  # a plain answer becomes an apology and a refusal
    "canned_answer",  # a plain answer becomes the same boilerplate sentence every time
    "duplicate_questions",  # a list of questions repeats its first one, reworded
    "low_score",  # a judge's score is the lowest the schema allows
    "imageless",  # a judge says the question can be answered without the image
]
# Faults that shape one kind of answer only (replies.purpose_of): they neither match nor count elsewhere.
FAULT_PURPOSE: dict[str, str] = {
    "refuse": "text",
    "canned_answer": "text",
    "duplicate_questions": "questions",
    "low_score": "judge",
    "imageless": "judge",
}
HTTP_FAULT_STATUS: dict[str, int] = {"429": 429, "500": 500, "502": 502, "503": 503, "400": 400}
RETRY_AFTER_KINDS = frozenset({"429", "503"})
DEFAULT_TIMEOUT_DELAY_S = 600.0


class FaultRule(BaseModel):
    """One way to fail, and which requests it applies to (all filters must match)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    times: int | None = Field(default=None, ge=0)  # per request key; None: every time
    probability: float = Field(default=1.0, ge=0.0, le=1.0)  # drawn from the server's seeded RNG
    retry_after: float | None = Field(default=None, ge=0)  # seconds, sent on 429/503 only
    delay_s: float = Field(default=DEFAULT_TIMEOUT_DELAY_S, ge=0)  # for kind "timeout"
    match_text: str | None = None  # substring of the user text
    match_image_size: str | None = Field(default=None, pattern=r"^\d+x\d+$")  # "WxH" of an image as received
    match_fingerprint: str | None = Field(default=None, min_length=8)  # an image fingerprint, or its prefix
    match_model: str | None = None  # exact model name


FAULT_RULES = TypeAdapter(list[FaultRule])


@dataclass(frozen=True)
class RequestView:
    """What fault rules may look at in one chat request."""

    model: str
    user_text: str
    system: str
    fingerprints: tuple[str, ...] = ()
    image_sizes: tuple[tuple[int, int], ...] = ()
    purpose: str = "text"  # what the request asks for: text, questions, judge, compare or json

    @property
    def key(self) -> str:
        """Return the request key that ``times`` is counted against."""
        blob = json.dumps([list(self.fingerprints), self.user_text, self.system, self.model])
        return hashlib.sha256(blob.encode()).hexdigest()


def rule_matches(rule: FaultRule, request: RequestView) -> bool:
    """Return whether every filter of ``rule`` accepts ``request``."""
    if FAULT_PURPOSE.get(rule.kind, request.purpose) != request.purpose:
        return False
    if rule.match_model is not None and rule.match_model != request.model:
        return False
    if rule.match_text is not None and rule.match_text not in request.user_text:
        return False
    if rule.match_image_size is not None:
        sizes = {f"{w}x{h}" for w, h in request.image_sizes}
        if rule.match_image_size not in sizes:
            return False
    if rule.match_fingerprint is not None:
        prefix = rule.match_fingerprint.lower()
        if not any(fp.startswith(prefix) for fp in request.fingerprints):
            return False
    return True


class FaultInjector:
    """Holds the rules and the per-(rule, request key) fire counts; used from one event loop only."""

    def __init__(self, rules: Sequence[FaultRule] = (), *, seed: int = 0) -> None:
        self._rules: list[FaultRule] = list(rules)
        self._fired: dict[tuple[int, str], int] = {}
        self._rng = random.Random(seed)

    @property
    def rules(self) -> list[FaultRule]:
        """Return a copy of the current rules."""
        return list(self._rules)

    def replace(self, rules: Sequence[FaultRule]) -> None:
        """Install new rules; counts restart, since they belonged to the old rules."""
        self._rules = list(rules)
        self._fired.clear()

    def reset(self) -> None:
        """Forget how often each rule fired, so ``times`` starts again for every key."""
        self._fired.clear()

    def pick(self, request: RequestView) -> FaultRule | None:
        """Return the first rule that matches ``request`` and fires now (and count it), or None."""
        key = request.key
        for index, rule in enumerate(self._rules):
            if not rule_matches(rule, request):
                continue
            fired = self._fired.get((index, key), 0)
            if rule.times is not None and fired >= rule.times:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            self._fired[(index, key)] = fired + 1
            return rule
        return None


def load_fault_rules(path: str | Path) -> list[FaultRule]:
    """Read a JSON or YAML file holding a list of rules (or ``{"faults": [...]}``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml  # only needed for YAML files

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict) and "faults" in data:
        data = data["faults"]
    if data is None:
        data = []
    return FAULT_RULES.validate_python(data)
