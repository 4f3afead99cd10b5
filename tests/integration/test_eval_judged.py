"""The student judged: known-right, known-wrong and looping answers ranked by the offline teacher as judge.

The dataset is a real questions-mode run's val.jsonl (so every case has its kind); the student's
answers come from an answers file, so no model runs: what is under test is the judging, its
both-orders rule, the free verdict of a degenerate answer, and the ledger that pays for nothing twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.flow_state import run_flow
from vqa_distill.student.judged.params import EvalParams

WRONG = "It is a purple and orange striped cloth, photographed at night."
LOOP = "The picture is gray and some some some some some some some some"
BASE = "I cannot tell from here."


def _dataset(tmp_path: Path, base_url: str) -> Path:
    make_images(tmp_path / "images", 4, prefix="judged", size=(96, 64))
    params = params_for(tmp_path / "images", tmp_path / "run", base_url, questions=3, val_ratio=0.5)
    summary = run_generate_flow(params, show_progress=False).summary
    assert summary is not None and summary.failed == 0
    return tmp_path / "run" / "val.jsonl"


def _answers(val: Path, path: Path) -> list[str]:
    """Per row: the teacher's own answer (right), a wrong one, a loop, in turn; the base says nothing."""
    rows = read_jsonl(val)
    student = [(row["messages"][-1]["content"], WRONG, LOOP)[i % 3] for i, row in enumerate(rows)]
    lines = [{"model": "student", "index": i, "response": a} for i, a in enumerate(student)]
    lines += [{"model": "base", "index": i, "response": BASE} for i in range(len(rows))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return student


def _evaluate(params: EvalParams) -> dict[str, Any]:
    from flows.evaluate import evaluate

    run = run_flow(evaluate(params, return_state=True))
    assert not isinstance(run.result, BaseException), run.result
    document: dict[str, Any] = json.loads(Path(params.out or "", "eval.json").read_text(encoding="utf-8"))
    return document


def test_the_judge_ranks_right_above_wrong_in_both_orders_and_a_loop_costs_no_call(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    val = _dataset(tmp_path, teacher.base_url)
    student = _answers(val, tmp_path / "answers.jsonl")
    assert len(student) >= 6
    metas = read_jsonl(tmp_path / "run" / "val.meta.jsonl")  # line for line: what ms-swift's rows cannot hold
    assert len(metas) == len(student)
    assert all(Path(m["source"]).parent == tmp_path / "images" and m["kind"] and m["sha256"] for m in metas)
    teacher.reset()
    params = EvalParams(dataset=str(val), answers_file=str(tmp_path / "answers.jsonl"), out=str(tmp_path / "eval"),
                        base_url=teacher.base_url, rpm=6000, tpm=10_000_000)  # fmt: skip
    document = _evaluate(params)
    cases = document["cases"]
    assert {c["case"]["kind"] for c in cases} == {"conversation", "detail", "reasoning"}
    for number, case in enumerate(cases):
        vs_teacher, vs_base = case["verdicts"]["teacher"], case["verdicts"]["base"]
        if number % 3 == 0:  # the teacher's own answer: as good as the teacher's, better than nothing
            assert vs_teacher["outcome"] == "tie" and vs_base["outcome"] == "win", case
            assert case["rubric"]["student"] >= 4 and case["degenerate"]["student"] is None
        elif number % 3 == 1:  # wrong colours: loses to the teacher whichever answer is shown first
            assert vs_teacher["outcome"] == "loss" and vs_teacher["picks"] == ["opponent", "opponent"], case
            assert case["rubric"]["student"] <= 3  # below every right answer's 4 or 5
        else:  # the loop: flagged, lost, and no judge was asked about it
            assert case["degenerate"]["student"] == "loop"
            assert vs_teacher["outcome"] == vs_base["outcome"] == "loss"
            assert vs_teacher["picks"] == [None, None] and case["rubric"]["student"] == 1
    judged_pairs = sum(1 for c in cases for v in c["verdicts"].values() if v["picks"] != [None, None])
    rubrics = sum(
        1 for c in cases for m, s in c["rubric"].items() if s is not None and c["degenerate"][m] is None
    )
    asked = chat_requests(teacher.stats())
    assert len(asked) == 2 * judged_pairs + rubrics == document["judge_calls"]["asked"]
    comparisons = [r["user_text"] for r in asked if "Answer B" in r["user_text"]]
    wrong_first = [t for t in comparisons if WRONG in t and t.index(WRONG) < t.index("Answer B")]
    wrong_second = [t for t in comparisons if WRONG in t and t.index(WRONG) > t.index("Answer B")]
    assert len(wrong_first) == len(wrong_second) > 0  # every pair was shown in both orders
    summary = document["summary"]["rates"]["all"]
    third = len(cases) // 3
    assert summary["teacher"]["wins"] == 0 and summary["teacher"]["ties"] == len(cases) - 2 * third
    assert 0 < summary["teacher"]["low"] <= summary["teacher"]["rate"] <= summary["teacher"]["high"] < 1
    assert document["headline"].startswith("student vs teacher: win-or-tie")
    assert (tmp_path / "eval" / "eval.html").is_file()

    teacher.reset()
    again = _evaluate(params)  # the same rows again: every verdict from the ledger, no call paid
    assert chat_requests(teacher.stats()) == [] and again["judge_calls"]["asked"] == 0
    assert again["summary"] == document["summary"]

    elsewhere = _evaluate(params.model_copy(update={"out": str(tmp_path / "eval elsewhere")}))
    # another report folder: its own ledger is empty, the task cache answers; no verdict may go missing
    assert chat_requests(teacher.stats()) == [] and elsewhere["judge_calls"]["failed"] == 0
    assert elsewhere["summary"] == document["summary"]


def test_batch_mode_sends_the_judge_calls_as_batches_and_a_rerun_submits_none(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    from vqa_distill.teacher.batch.book import BatchBook
    from vqa_distill.teacher.ledger.records import Ledger
    from vqa_distill.teacher.ledger.tables import STATUS_ANSWERED, STATUS_UNUSABLE

    val = _dataset(tmp_path, teacher.base_url)
    _answers(val, tmp_path / "answers.jsonl")
    teacher.reset()
    params = EvalParams(dataset=str(val), answers_file=str(tmp_path / "answers.jsonl"), out=str(tmp_path / "eval"),
                        base_url=teacher.base_url, rpm=6000, tpm=10_000_000, batch=True, batch_wait_minutes=2)  # fmt: skip
    document = _evaluate(params)
    assert chat_requests(teacher.stats()) == []  # not one judge call went online
    with Ledger(tmp_path / "eval") as ledger:
        paid = list(ledger.records(STATUS_ANSWERED, STATUS_UNUSABLE))
        with BatchBook(ledger) as book:
            batches = [row.batch_id for row in book.rows() if row.batch_id]
    assert paid and all(record.batch_id for record in paid)
    # a right answer is the teacher's own: "A: x, B: x" reads the same in both orders, one request for two calls
    assert document["judge_calls"]["asked"] >= len(paid) and document["judge_calls"]["failed"] == 0
    cases = document["cases"]
    assert all(c["verdicts"]["teacher"]["outcome"] == "loss" for c in cases[1::3])  # the wrong answers, as online

    again = _evaluate(params)
    assert again["judge_calls"]["asked"] == 0 and again["summary"] == document["summary"]
    with Ledger(tmp_path / "eval") as ledger, BatchBook(ledger) as book:
        assert [row.batch_id for row in book.rows() if row.batch_id] == batches  # nothing submitted the second time
    assert batches
