"""How many rows ms-swift would drop, cut or fail on, and the share past which training is refused.

What ms-swift 4.6 does to a row the preflight flags (read in its source, measured with the tiny model):

- ``--truncation_strategy`` defaults to ``delete`` (``TemplateArguments``: None becomes 'delete', passed
  to the template as 'raise'). For a multimodal model ``lazy_tokenize`` is on, so a row over
  ``--max_length`` is not removed from the dataset: each time it is fetched, a random other row is
  trained in its place, without a log line. ``left`` / ``right`` cut text tokens but never image tokens,
  so a cut answer is trained as if whole, and an image larger than ``--max_length`` stays whole.
  ``split`` is refused by ``swift sft`` (pre-training only).
- ``--strict`` defaults to false: a malformed row (wrong format, missing or broken image) is dropped at
  load time or, at encode time, swapped for a random other row (a warning for the first ten).
  ``--strict true`` stops the run at the first bad row, a too-long one included.

Either way the rows are lost to training, so their share is measured against ``--max-drop-share``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TRUNCATION_STRATEGY = "delete"  # ms-swift 4.6 TemplateArguments.truncation_strategy None -> 'delete'
DEFAULT_STRICT = False  # ms-swift 4.6 DataArguments.strict
DEFAULT_MAX_DROP_SHARE = 0.05
_TRUE = {"true", "1", "yes", "y", "t", "on"}

# What each strategy does to a row over --max_length (when --strict is false).
_TOO_LONG_FATE = {
    "delete": "",  # dropped: the plain case, said by the line's head
    "left": "cut to fit (truncation_strategy left: the start of the text is lost, the images kept)",
    "right": "cut to fit (truncation_strategy right: the end of the answer is lost, the images kept)",
    "split": "refused (truncation_strategy split: swift sft allows it for pre-training only)",
}


@dataclass(frozen=True)
class SwiftDataFlags:
    """The two ms-swift options that decide a bad row's fate, as the run passes them (or their defaults)."""

    truncation_strategy: str = DEFAULT_TRUNCATION_STRATEGY
    strict: bool = DEFAULT_STRICT

    @classmethod
    def from_args(cls, swift_args: Sequence[str]) -> SwiftDataFlags:
        """Read ``--truncation_strategy`` and ``--strict`` from the extra ``swift sft`` flags; the last wins."""
        found: dict[str, str] = {}
        args = list(swift_args)
        for index, arg in enumerate(args):
            name, _, value = arg.partition("=")
            key = name.lstrip("-").replace("-", "_")
            if not name.startswith("--") or key not in ("truncation_strategy", "strict"):
                continue
            if not value:  # "--strict" alone means true, as ms-swift's parser reads it
                following = args[index + 1] if index + 1 < len(args) else "--"
                value = "true" if following.startswith("--") else following
            found[key] = value
        strategy = found.get("truncation_strategy", DEFAULT_TRUNCATION_STRATEGY)
        strict = found["strict"].lower() in _TRUE if "strict" in found else DEFAULT_STRICT
        return cls(strategy, strict)


@dataclass(frozen=True)
class DropShare:
    """Rows ms-swift would not train on as written: over ``max_length`` or malformed, out of ``total``."""

    total: int
    too_long: int
    malformed: int
    max_length: int
    flags: SwiftDataFlags = SwiftDataFlags()

    @property
    def rows(self) -> int:
        """Rows lost, cut or fatal to the run."""
        return self.too_long + self.malformed

    @property
    def share(self) -> float:
        """``rows`` as a share of ``total`` (0 for no rows)."""
        return self.rows / self.total if self.total else 0.0

    def over(self, limit: float) -> bool:
        """True when more than ``limit`` (0..1) of the rows would go."""
        return self.share > limit

    def describe(self, see: str = "") -> str:
        """The one plain line: how many rows, what share, why, and where the list is."""
        parts: list[str] = []
        dropped_only = True
        if self.too_long:
            fate = "fatal (strict true: the first one stops the run)" if self.flags.strict else ""
            fate = fate or _TOO_LONG_FATE.get(self.flags.truncation_strategy, "")
            dropped_only &= not fate
            detail = fate or f"(truncation_strategy {self.flags.truncation_strategy})"
            parts.append(f"{self.too_long} longer than max_length {self.max_length} {detail}")
        if self.malformed:
            dropped_only &= not self.flags.strict
            strict = " (strict true: fatal)" if self.flags.strict else ""
            parts.append(f"{self.malformed} malformed{strict}")
        head = (
            "would be dropped by ms-swift" if dropped_only else "would be dropped, cut or fatal in ms-swift"
        )
        line = f"preflight: {self.rows} of {self.total} rows ({100 * self.share:.1f} %) {head}"
        return line + (": " + ", ".join(parts) if parts else "") + (f"; see {see}" if see else "")

    def limit_line(self, limit: float) -> str:
        """Why a share over ``limit`` refuses the run, even with ``--skip-bad-rows``."""
        return f"That is more than --max-drop-share {limit:g} ({100 * limit:.1f} %): too much of the data would go."

    def needed_limit(self) -> float:
        """The smallest two-decimal ``--max-drop-share`` that lets these rows be dropped."""
        return min(1.0, math.ceil(self.share * 100 - 1e-9) / 100)


def refusal_text(share: DropShare, limit: float, *, fit: str, counted: str = "") -> str:
    """The lines after a refusal's list of rows: the share, the limit when it is passed, how the tokens
    were ``counted``, then what would let training start. ``fit`` is a ``--max_pixels ...`` hint under
    which the over-long rows fit ('' when none does)."""
    lines = [share.describe()] + ([share.limit_line(limit)] if share.over(limit) else [])
    return "\n".join([*lines, *filter(None, [counted]), _advice(share, limit, fit=fit)])


def _advice(share: DropShare, limit: float, *, fit: str) -> str:
    """What would let training start: fix, fit, or drop the rows (under a raised limit when it is passed)."""
    if share.over(limit):
        skip = f"--skip-bad-rows with --max-drop-share {share.needed_limit():g}"
    else:
        skip = "--skip-bad-rows"
    if fit:
        return f"Fix these rows, or pass {fit}, or {skip} to drop them (they are counted)."
    raise_length = "raise --max_length for them, or " if share.too_long else ""
    return f"Fix these rows, or {raise_length}pass {skip} to drop them (they are counted)."
