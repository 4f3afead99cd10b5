"""Why the loop stops after a round, weighed again when a stopped loop is restarted with other limits."""

from __future__ import annotations

from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.state import RoundRecord
from vqa_distill.loop.stopping import stop_reason
from vqa_distill.student.handoff import StudentOptions
from vqa_distill.teacher.params import TeacherParams


def _params(**loop: object) -> DistillParams:
    return DistillParams(
        teacher=TeacherParams(images="/data", out="/data/loop"),
        student=StudentOptions(model_id_or_path="/models/tiny"),
        **loop,  # type: ignore[arg-type]
    )


def _round(number: int, rate: float | None = None) -> RoundRecord:
    return RoundRecord(round=number, spend_usd=0.01 * number, requests=3 * number, win_or_tie=rate)


def test_nothing_done_goes_on_and_the_last_round_asked_for_stops() -> None:
    assert stop_reason(_params(rounds=2), [], affordable=None) is None
    assert stop_reason(_params(rounds=2), [_round(0)], affordable=None) is None
    assert stop_reason(_params(rounds=2), [_round(0), _round(1)], affordable=None) == "rounds"


def test_a_loop_stopped_at_its_rounds_or_budget_goes_on_when_restarted_with_more() -> None:
    done = [_round(0)]
    assert stop_reason(_params(rounds=1), done, affordable=None) == "rounds"
    assert stop_reason(_params(rounds=3), done, affordable=None) is None
    assert stop_reason(_params(rounds=3), done, affordable=0) == "budget"
    assert stop_reason(_params(rounds=3), done, affordable=4) is None
    assert (
        stop_reason(_params(rounds=1), [*done, _round(1)], affordable=None) == "rounds"
    )  # fewer: stop at once


def test_a_gain_below_min_gain_stops_and_rounds_without_a_verdict_never_do() -> None:
    params = _params(rounds=5, min_gain=0.05)
    assert stop_reason(params, [_round(0, 0.40), _round(1, 0.42)], affordable=None) == "gain +0.02 < 0.05"
    assert stop_reason(params, [_round(0, 0.40), _round(1, 0.50)], affordable=None) is None
    assert stop_reason(params, [_round(0, None), _round(1, 0.42)], affordable=None) is None
    assert (
        stop_reason(_params(rounds=5), [_round(0, 0.40), _round(1, 0.10)], affordable=None) is None
    )  # min_gain 0
