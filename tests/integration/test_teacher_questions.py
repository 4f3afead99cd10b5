"""Questions mode end to end: N distinct questions per image, each answered beside its own image, paid once.

Real Prefect server, real offline teacher over HTTP, the real openai client: the teacher writes the
questions (structured outputs), then answers each; a rerun and a run killed mid-way pay for nothing twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO_ROOT, generate_args, run_cli
from tests.support.ops_fixtures import wait_for
from tests.support.qa_helpers import (
    QA_PROMPT,
    asked,
    qa_images,
    qa_params,
    questions_by_image,
    read_jsonl_lines,
    records_of,
    task_run_names,
)
from tests.support.row_pictures import original_of
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.similarity import near_duplicate_questions, normalize
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, Ledger

DATA_NAMED = ("ask-questions[", "ask-teacher[")  # a run named after its data; before that, ask-teacher-ffb


def data_named_runs(flow_run_id: str, count: int) -> list[str]:
    """Return the sorted names of the flow run's question and answer runs once ``count`` are named after their data.

    The API records a run under Prefect's default name first and its rename a moment later.
    """

    def named() -> list[str] | None:
        names = sorted(n for n in task_run_names(flow_run_id, expected=0) if n.startswith(DATA_NAMED))
        return names if len(names) >= count else None

    found: list[str] = wait_for(named, what=f"{count} task runs named after their data")
    return found


def test_each_image_gets_n_distinct_questions_each_answered_beside_its_image(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    sizes = qa_images(tmp_path / "images", 4)
    params = qa_params(tmp_path / "images", tmp_path / "out", teacher.base_url, questions=4, system="Be precise.")
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0
    assert outcome.summary.requests == 4 * (1 + 4)
    assert len(asked(teacher.stats())) == 4 * (1 + 4)  # one question list per image, then one call per question

    by_image = questions_by_image(tmp_path / "out")
    assert sorted(by_image) == sorted(str(p) for p in sizes)
    for questions in by_image.values():
        assert len(questions) == 4
        assert len({normalize(q) for q in questions}) == 4 and near_duplicate_questions(questions) == {}

    rows = read_jsonl_lines(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 16
    for row in rows:
        (picture,) = row["images"]
        image = str(original_of(picture, sizes))  # the row names the teacher's picture of it
        system, user, assistant = row["messages"]
        assert system == {"role": "system", "content": "Be precise."}
        assert user["content"].startswith("<image>")
        assert user["content"].removeprefix("<image>") in by_image[image]  # its own image's question
        assert sizes[Path(image)] in assistant["content"]  # the answer is about that picture (its size)
    assert Counter(str(original_of(row["images"][0], sizes)) for row in rows) == dict.fromkeys(map(str, sizes), 4)
    assert read_jsonl_lines(tmp_path / "out" / "rejected.jsonl") == []
    assert (tmp_path / "out" / "review.html").is_file()

    # Each run is named after its data: the question list after its image, each answer after its question.
    expected = [f"ask-questions[qa_0{i}.png]" for i in range(4)]
    expected += [f"ask-teacher[qa_0{i}.png #{k}]" for i in range(4) for k in range(1, 5)]
    assert data_named_runs(outcome.flow_run_id or "", len(expected)) == sorted(expected)

    # A rerun asks nothing: every question list and answer is in the ledger.
    teacher.reset()
    again = run_generate_flow(params, show_progress=False)
    assert again.summary is not None
    assert (again.summary.answered_now, again.summary.already_answered, again.summary.requests) == (0, 20, 20)
    assert teacher.stats()["totals"]["requests"] == 0
    assert read_jsonl_lines(tmp_path / "out" / "train.jsonl") == rows


def test_without_questions_the_keys_and_rows_are_unchanged(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    """Questions mode is opt-in: a single-prompt run keeps its keys and one row per image x prompt."""
    qa_images(tmp_path / "images", 2, prefix="plain")
    params = qa_params(tmp_path / "images", tmp_path / "out", teacher.base_url, questions=None)
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.answered_now == 2
    rows = read_jsonl_lines(tmp_path / "out" / "train.jsonl")
    assert [row["messages"][0]["content"] for row in rows] == [f"<image>{QA_PROMPT}"] * 2
    assert not (tmp_path / "out" / "rejected.jsonl").exists()
    assert {r.kind for r in records_of(tmp_path / "out", "answer")} == {"answer"}
    assert records_of(tmp_path / "out", "questions") == []


def test_an_invalid_question_list_is_recorded_with_its_reason(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    qa_images(tmp_path / "images", 2, prefix="cut")
    # The list of the 72x48 picture is cut off mid-JSON (finish_reason "length").
    teacher.set_faults([{"kind": "truncate", "match_image_size": "72x48", "match_text": "distinct questions"}])
    outcome = run_generate_flow(qa_params(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0 and outcome.summary.unusable == 1
    (lost,) = [line for line in read_jsonl_lines(tmp_path / "out" / "rejected.jsonl") if line["question"] is None]
    assert lost["image"].endswith("cut_01.png") and lost["reason"] == "questions unusable"
    assert "finish_reason=length" in lost["detail"]
    assert len(read_jsonl_lines(tmp_path / "out" / "train.jsonl")) == 3  # the other image's three questions


def test_a_run_killed_mid_way_resumes_without_paying_twice(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    qa_images(tmp_path / "images", 6, prefix="kill")
    teacher.set_latency(0.3)
    argv = [sys.executable, "-m", "vqa_distill.cli", *generate_args(
        tmp_path / "images", tmp_path / "out", teacher.base_url, "--questions", "3", "--concurrency", "2")]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger_path = tmp_path / "out" / "ledger.sqlite"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 6:
        time.sleep(0.1)
        if ledger_path.exists():
            with Ledger(tmp_path / "out") as ledger:
                done = sum(1 for r in ledger.records(STATUS_ANSWERED))
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = asked(teacher.stats())
    assert 6 <= len(first) < 6 * 4, "the run was not killed mid-way"
    teacher.reset()
    teacher.set_latency(0.0)
    result = run_cli(*generate_args(tmp_path / "images", tmp_path / "out", teacher.base_url, "--questions", "3"))
    assert result.returncode == 0, result.stderr
    second = asked(teacher.stats())
    with Ledger(tmp_path / "out") as ledger:
        assert len(ledger.done_keys()) == 6 * (1 + 3)
    # Nothing answered before the kill is asked again; only the (at most 2) requests in flight at the kill are.
    assert len(set(first) & set(second)) <= 2
    assert len(first) + len(second) <= 6 * (1 + 3) + 2
    assert len(read_jsonl_lines(tmp_path / "out" / "train.jsonl")) == 18
    assert "quality gates" in result.stdout and "review page" in result.stdout
