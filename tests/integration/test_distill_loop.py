"""The distil loop does what it promises, on the offline teacher with the tiny student on the CPU.

``vqa-distill distill`` runs as a user runs it (its own process) on seven pictures with a request
budget that cuts round 1 short. It is killed (SIGKILL) while round 1's teacher requests are in
flight and started again: it resumes at round 1, and no request is paid twice. Then: round 1 asked
the teacher only the targeted questions (from the student's losses in round 0) and the images the
student doubted most; the teacher's requests stayed within the budget, which stopped the loop; no
held-out picture reached a training file; the flow run shows its rounds table and curve.

A second, cheaper loop (``--selection random``) is run for one round, then restarted with two: round
0 is not asked again and round 1 asks random pool images instead.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import REPO_ROOT, TEST_API_KEY, chat_requests, make_images, params_for
from vqa_distill.flow_state import run_flow
from vqa_distill.loop.doubt import most_doubted, read_doubts
from vqa_distill.loop.params import DistillParams
from vqa_distill.loop.targets import losses_of
from vqa_distill.student.handoff import StudentOptions

PROMPT = "Describe the defects."
BUDGET_REQUESTS = 21  # round 0: 4 units x 3 requests; round 1: 3 of its 4 units fit, one is left out
PER_UNIT = 3  # a question set and its two answers (questions=2, no quality judge)
LOOP_FLAGS = {
    "--questions": "2", "--rounds": "3", "--holdout-share": "0.2", "--seed-count": "2", "--doubt-images": "2",
    "--targeted-items": "2", "--targeted-questions": "2", "--probe-rows": "2", "--eval-max-new-tokens": "16",
    "--budget-requests": str(BUDGET_REQUESTS), "--max-steps": "2", "--tuner": "lora", "--student-devices": "cpu",
}  # fmt: skip
STUDENT_TABLE = """[teacher]
retry_delay = 0.05
rpm = 6000
tpm = 10000000

[student]
num_proc = 1
max_length = 1024
logging_steps = 1
max_pixels = 16384
eval_limit = 0
gradient_accumulation_steps = 1
split_dataset_ratio = 0.0
"""
HUNG_S = 30.0  # the teacher's latency once round 1 has been paid for in part: the kill finds those in flight
RUN_TIMEOUT_S = 300
JUDGE_MARKS = ("Answer A:", "Grade the answer")  # the evaluate flow's judge asks the same offline teacher


@dataclass(frozen=True)
class KilledLoop:
    out: Path
    state_at_kill: dict[str, Any]
    state: dict[str, Any]
    billed_before_restart: list[dict[str, Any]]
    billed: list[dict[str, Any]]  # the teacher's billed requests of both processes, the judge's left out
    cut_off: list[dict[str, Any]]  # requests in flight at the kill: the client hung up (499), nothing billed
    output: str


def teacher_requests(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The billed chat requests with an image that the loop's teacher stage made (not the evaluation's judge)."""
    return [
        r
        for r in chat_requests(stats)
        if r["billed"] and not any(mark in r["user_text"] for mark in JUDGE_MARKS)
    ]


def wait_for(check: Callable[[], Any], what: str, process: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(
                f"the loop ended (exit {process.returncode}) before {what}:\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def distill_argv(images: Path, out: Path, base_url: str, model: Path, config: Path) -> list[str]:
    argv = [sys.executable, "-m", "vqa_distill.cli", "distill", "--images", str(images), "--out", str(out),
            "--base-url", base_url, "--prompt", PROMPT, "--student-model", str(model), "--config", str(config),
            "--no-progress"]  # fmt: skip
    for flag, value in LOOP_FLAGS.items():
        argv += [flag, value]
    return argv


def ledger_rows(out: Path) -> list[dict[str, Any]]:
    """Every record of the loop's ledger, read straight from its SQLite file, oldest first."""
    with sqlite3.connect(f"file:{out / 'teacher' / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("select * from records order by created_at, key")]


def paid(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["status"] in ("answered", "unusable")]


def loop_state(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "loop.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def killed_loop(
    tmp_path_factory: pytest.TempPathFactory, teacher_server: Any, tiny_model: Path
) -> KilledLoop:
    """Run the loop, SIGKILL it once round 1 has paid for part of its asks, run it again to the end."""
    root = tmp_path_factory.mktemp("distill-loop")
    make_images(root / "images", 7, prefix="distloop", size=(64, 48))
    config = root / "loop.toml"
    config.write_text(STUDENT_TABLE, encoding="utf-8")
    out = root / "out"
    argv = distill_argv(root / "images", out, teacher_server.base_url, tiny_model, config)
    env = {**os.environ, "OPENAI_API_KEY": TEST_API_KEY}
    teacher_server.reset()
    teacher_server.set_faults([])
    teacher_server.set_latency(0.3)
    try:
        log = root / "first.log"
        with log.open("wb") as sink:
            first = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
            try:
                wait_for(
                    lambda: any(
                        "A student model" in r["user_text"] for r in teacher_requests(teacher_server.stats())
                    ),
                    "round 1's first targeted question set was paid",
                    first,
                    log,
                )
                teacher_server.set_latency(HUNG_S)  # what round 1 asks from now on hangs until the kill
                time.sleep(2.0)  # what was answered before is written to the ledger meanwhile
                state_at_kill = loop_state(out)
            finally:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
        billed_before = teacher_requests(teacher_server.stats())
        teacher_server.set_latency(0.0)
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
        stats = teacher_server.stats()
        return KilledLoop(
            out=out,
            state_at_kill=state_at_kill,
            state=loop_state(out),
            billed_before_restart=billed_before,
            billed=teacher_requests(stats),
            cut_off=[r for r in chat_requests(stats) if r["status"] == 499 and not r["billed"]],
            output=done.stdout,
        )
    finally:
        teacher_server.set_latency(0.0)


def test_a_killed_loop_resumes_in_the_round_it_was_in_and_pays_no_request_twice(
    killed_loop: KilledLoop,
) -> None:
    assert [r["round"] for r in killed_loop.state_at_kill["rounds"]] == [0]
    assert [r["round"] for r in killed_loop.state["rounds"]] == [0, 1]
    assert killed_loop.state["rounds"][0] == {**killed_loop.state_at_kill["rounds"][0], "stop_reason": None}
    assert killed_loop.state["split"] == killed_loop.state_at_kill["split"]

    round0 = killed_loop.state["rounds"][0]["requests"]
    assert len(killed_loop.billed_before_restart) > round0  # round 1 had paid for part of its asks
    asked = Counter((tuple(r["fingerprints"]), r["user_text"]) for r in killed_loop.billed)
    assert [what for what, times in asked.items() if times > 1] == []
    assert killed_loop.cut_off  # the kill found requests in flight: asked again after the restart, paid once
    assert all(asked[(tuple(r["fingerprints"]), r["user_text"])] == 1 for r in killed_loop.cut_off)
    ledger = paid(ledger_rows(killed_loop.out))
    assert len({row["key"] for row in ledger}) == len(ledger) == len(killed_loop.billed)
    assert killed_loop.output.splitlines()[-1].startswith("round: 1 ")


def test_round_one_asks_only_targeted_questions_and_the_doubted_images(killed_loop: KilledLoop) -> None:
    out, state = killed_loop.out, killed_loop.state
    split, (first, second) = state["split"], state["rounds"]
    rows = paid(ledger_rows(out))
    round1 = rows[first["requests"] :]
    question_sets = [row for row in round1 if row["kind"] == "questions"]
    assert question_sets and min(row["created_at"] for row in round1) >= max(
        row["created_at"] for row in rows[: first["requests"]]
    )

    probe_losses = {
        (x.sha256, x.question) for x in losses_of(out / "rounds/r0/probe/eval.json", held_out=False)
    }
    pool = json.loads((out / "rounds/r1/doubt/pool.json").read_text(encoding="utf-8"))
    doubted = most_doubted(read_doubts(out / "rounds/r1/doubt/answers.jsonl", pool), 2)
    assert sorted(pool) == sorted(split["pool"]) and len(doubted) == 2

    targeted, doubts = [], []
    for row in question_sets:
        assert row["sha256"] not in split["holdout"]
        if "A student model" in row["prompt"]:
            assert row["sha256"] in split["seed"]  # a training image round 0 asked about
            assert any(
                sha == row["sha256"] and f'"{question}"' in row["prompt"] for sha, question in probe_losses
            )
            targeted.append(row["sha256"])
        else:
            assert f"Focus: {PROMPT}" in row["prompt"]
            doubts.append(row["sha256"])
    assert len(targeted) == 2 and doubts == doubted[: len(doubts)] and len(doubts) >= 1
    assert len(question_sets) + second["left_out_units"] == 2 + 2  # targeted_items + doubt_images, as planned
    assert sorted(second["asked_images"]) == sorted(set(targeted + doubts))

    asked_about = {row["sha256"] for row in question_sets}
    assert {row["sha256"] for row in round1} <= asked_about
    # The offline teacher asks alike of every picture ("Describe this picture in detail."): that a targeted
    # prompt quotes a loss of its own training image (above) is what shows no held-out wording is quoted.


def test_the_budget_is_never_exceeded_and_stops_the_loop(killed_loop: KilledLoop) -> None:
    first, second = killed_loop.state["rounds"]
    spent = len(paid(ledger_rows(killed_loop.out)))
    assert spent == second["requests"] <= BUDGET_REQUESTS
    assert first["requests"] <= 4 * PER_UNIT and first["left_out_units"] == 0
    assert second["left_out_units"] >= 1
    assert (first["stop_reason"], second["stop_reason"]) == (
        None,
        "budget" if BUDGET_REQUESTS - spent < PER_UNIT else None,
    )


def test_no_held_out_image_enters_training(killed_loop: KilledLoop) -> None:
    out, held = killed_loop.out, set(killed_loop.state["split"]["holdout"])
    held_meta = [
        json.loads(line) for line in (out / "holdout.meta.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert held_meta and {m["sha256"] for m in held_meta} == held
    held_pictures = {
        Path(image).read_bytes()
        for line in (out / "holdout.jsonl").read_text(encoding="utf-8").splitlines()
        for image in json.loads(line)["images"]
    }
    versions = sorted(out.glob("rounds/r*/dataset/train.jsonl")) + sorted(out.glob("rounds/r*/probe.jsonl"))
    assert len(versions) == 4
    for version in versions:
        metas = [
            json.loads(line)
            for line in version.with_suffix(".meta.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        rows = [json.loads(line) for line in version.read_text(encoding="utf-8").splitlines()]
        assert rows and len(metas) == len(rows)
        assert not {m["sha256"] for m in metas} & held, version
        for row in rows:
            for image in row["images"]:
                assert not any(Path(image).name.startswith(sha) for sha in held), image
                assert Path(image).read_bytes() not in held_pictures, image
    last = [
        json.loads(line) for line in (out / "rounds/r1/dataset/train.meta.jsonl").read_text().splitlines()
    ]
    assert {m["reason"] for m in last} >= {"seed", "targeted"} and {m["prompt"] for m in last} == {PROMPT}


def prefect_api(path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{os.environ['PREFECT_API_URL']}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_loop_shows_its_rounds_table_and_curve_on_its_flow_run(killed_loop: KilledLoop) -> None:
    body = {"flows": {"name": {"any_": ["distill-loop"]}}, "sort": "START_TIME_DESC", "limit": 50}
    runs = [
        run
        for run in prefect_api("/flow_runs/filter", body)
        if run["parameters"]["params"]["teacher"]["out"] == str(killed_loop.out)
    ]
    assert len(runs) == 2  # the killed run and the one that finished
    finished = next(run for run in runs if run["state_type"] == "COMPLETED")
    artifacts = prefect_api("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [finished["id"]]}}})
    by_key = {a["key"]: a for a in artifacts}
    table = by_key["distill-rounds"]["data"]
    table = json.loads(table) if isinstance(table, str) else table
    assert [row["round"] for row in table] == [0, 1] and table[0]["rows added"].startswith("seed ")
    last = table[-1]
    assert "targeted" in last["rows added"] and last["teacher requests (total)"] <= BUDGET_REQUESTS
    assert (
        last["win-or-tie vs teacher [95% CI]"].startswith("0.")
        and "[" in last["win-or-tie vs teacher [95% CI]"]
    )
    assert float(last["teacher spend (USD, total)"]) > 0
    assert last["stop"] == (killed_loop.state["rounds"][1]["stop_reason"] or "")
    assert "data:image/png;base64," in by_key["distill-curve"]["data"]


def test_a_stopped_loop_restarted_with_more_rounds_goes_on_and_random_selection_asks_random_pool_images(
    tmp_path: Path, teacher: Any, api_key_env: str, tiny_model: Path
) -> None:
    make_images(tmp_path / "images", 5, prefix="distrandom", size=(64, 48))
    out = tmp_path / "out"
    teacher_params = params_for(tmp_path / "images", out, teacher.base_url, questions=2)
    student = StudentOptions(
        model_id_or_path=str(tiny_model), cuda_devices="cpu", max_steps=1, tuner="lora", num_proc=1, max_length=1024,
        logging_steps=1, max_pixels=128 * 128, eval_limit=0, gradient_accumulation_steps=1, split_dataset_ratio=0.0,
    )  # fmt: skip
    loop = {"selection": "random", "seed_count": 1, "holdout_share": 0.2, "doubt_images": 1, "targeted_items": 1,
            "probe_rows": 0, "eval_max_new_tokens": 8}  # fmt: skip

    assert _loop(teacher_params, student, 1, loop) == ["rounds"]
    first = loop_state(out)
    round0 = teacher_requests(teacher.stats())
    assert len(round0) == first["rounds"][0]["requests"] == 2 * PER_UNIT  # one held out, one seed

    teacher.reset()
    assert _loop(teacher_params, student, 2, loop) == [None, "rounds"]
    state = loop_state(out)
    assert state["rounds"][0] == {**first["rounds"][0], "stop_reason": None}
    round1 = teacher_requests(teacher.stats())
    assert not {(tuple(r["fingerprints"]), r["user_text"]) for r in round1} & {
        (tuple(r["fingerprints"]), r["user_text"]) for r in round0
    }
    second = state["rounds"][1]
    assert list(second["rows_added"]) == ["random"] and second["left_out_units"] == 0
    assert len(second["asked_images"]) == 2 and set(second["asked_images"]) <= set(state["split"]["pool"])
    assert sorted(p.name for p in (out / "rounds/r1/asked").iterdir()) == ["random"]
    question_sets = [r for r in round1 if "Write 2 distinct questions" in r["user_text"]]
    assert len(question_sets) == 2 and not [r for r in round1 if "A student model" in r["user_text"]]
    assert len(round1) == second["requests"] - first["rounds"][0]["requests"]


def _loop(
    teacher_params: Any, student: StudentOptions, rounds: int, loop: dict[str, Any]
) -> list[str | None]:
    from flows.distill import distill_loop

    params = DistillParams(teacher=teacher_params, student=student, rounds=rounds, **loop)
    run = run_flow(distill_loop(params, return_state=True))
    assert not isinstance(run.result, BaseException), run.result
    return [record.stop_reason for record in run.result]
