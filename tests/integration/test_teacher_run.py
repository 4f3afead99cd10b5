"""The generate flow end to end against the offline teacher: faults, retries, preflight, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import TEST_API_KEY, chat_requests, generate_args, make_images, params_for, run_cli
from tests.support.row_pictures import original_of
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED
from vqa_distill.teacher.ledger.records import Ledger


def requests_per_image(stats: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in chat_requests(stats):
        counts[request["fingerprints"][0]] = counts.get(request["fingerprints"][0], 0) + 1
    return counts


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "503", "times": 2},
        {"kind": "500", "times": 2},
        {"kind": "429", "times": 2, "retry_after": 0.2},
        {"kind": "bad_json", "times": 2},
    ],
    ids=["503", "500", "429", "bad_json"],
)
def test_transient_failures_are_retried_then_answered(
    tmp_path: Path, teacher: Any, api_key_env: str, fault: dict[str, Any]
) -> None:
    make_images(tmp_path / "images", 3)
    teacher.set_faults([fault])
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0
    assert outcome.summary.answered_now == 3
    assert sorted(requests_per_image(teacher.stats()).values()) == [3, 3, 3]  # two faults, then the answer
    with Ledger(tmp_path / "out") as ledger:
        assert {r.attempts for r in ledger.records()} == {3}
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 3


def test_retry_after_is_honoured(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 1)
    teacher.set_faults([{"kind": "429", "times": 1, "retry_after": 1.5}])
    run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    times = [r["t"] for r in chat_requests(teacher.stats())]
    assert len(times) == 2
    assert times[1] - times[0] >= 1.5


def test_a_400_is_recorded_once_and_not_retried(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 3)
    teacher.set_faults([{"kind": "400", "match_image_size": "64x48", "times": None}])
    make_images(tmp_path / "images", 1, prefix="odd", size=(40, 40))  # the only image the fault spares
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None
    assert outcome.summary.failed == 3 and outcome.summary.answered_now == 1
    assert sorted(requests_per_image(teacher.stats()).values()) == [1, 1, 1, 1]  # no retry of a 400
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert len(failed) == 3
    assert all(r["status_code"] == 400 and r["attempts"] == 1 and "HTTP 400" in r["error_message"] for r in failed)


def test_transient_failures_past_max_retries_fail_with_the_reason(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 2)
    teacher.set_faults([{"kind": "503"}])
    outcome = run_generate_flow(
        params_for(tmp_path / "images", tmp_path / "out", teacher.base_url, max_retries=2), show_progress=False
    )
    assert outcome.summary is not None and outcome.summary.failed == 2
    assert sorted(requests_per_image(teacher.stats()).values()) == [3, 3]  # 1 + 2 retries
    assert {item.attempts for item in outcome.summary.failed_items} == {3}
    assert all("HTTP 503" in item.reason for item in outcome.summary.failed_items)


@pytest.mark.parametrize(
    ("kind", "finish_reason"), [("truncate", "length"), ("content_filter", "content_filter"), ("empty", "stop")]
)
def test_unusable_answers_are_recorded_and_kept_out_of_the_dataset(
    tmp_path: Path, teacher: Any, api_key_env: str, kind: str, finish_reason: str
) -> None:
    make_images(tmp_path / "images", 2)
    make_images(tmp_path / "images", 1, prefix="odd", size=(40, 40))
    teacher.set_faults([{"kind": kind, "match_image_size": "40x40"}])
    outcome = run_generate_flow(params_for(tmp_path / "images", tmp_path / "out", teacher.base_url), show_progress=False)
    assert outcome.summary is not None
    assert (outcome.summary.answered_now, outcome.summary.unusable, outcome.summary.failed) == (2, 1, 0)
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    originals = list((tmp_path / "images").iterdir())
    assert len(rows) == 2 and not any(original_of(r["images"][0], originals).name.startswith("odd_") for r in rows)
    unusable = [r for r in read_jsonl(tmp_path / "out" / "responses.jsonl") if r["status"] == "unusable"]
    assert len(unusable) == 1 and unusable[0]["finish_reason"] == finish_reason
    assert outcome.summary.failed_items[0].status == "unusable"


def test_wrong_key_stops_the_run_before_any_image_is_sent(tmp_path: Path, teacher: Any) -> None:
    make_images(tmp_path / "images", 5)
    result = run_cli(
        *generate_args(tmp_path / "images", tmp_path / "out", teacher.base_url),
        env={"OPENAI_API_KEY": "sk-wrong-key-0123456789abcdef"},
    )
    assert result.returncode == EXIT_FATAL, result.stderr
    assert "refused the API key" in result.stderr
    assert "sk-wrong-key-0123456789abcdef" not in result.stdout + result.stderr
    stats = teacher.stats()
    # Just the preflight, which costs nothing: GET /v1/models/{model}, no chat completion at all.
    assert stats["totals"]["requests"] == 0 and stats["totals"]["other_paths"] == {"/v1/models/{model}": 1}


def test_unreachable_endpoint_and_unknown_model_are_fatal_with_their_own_message(
    tmp_path: Path, teacher: Any, api_key_env: str
) -> None:
    make_images(tmp_path / "images", 2)
    unreachable = run_cli(*generate_args(tmp_path / "images", tmp_path / "o1", "http://127.0.0.1:9/v1"))
    assert unreachable.returncode == EXIT_FATAL and "cannot reach the endpoint" in unreachable.stderr
    unknown = run_cli(*generate_args(tmp_path / "images", tmp_path / "o2", teacher.base_url, "--model", "gpt-9-vision"))
    assert unknown.returncode == EXIT_FATAL and "does not serve model 'gpt-9-vision'" in unknown.stderr
    assert chat_requests(teacher.stats()) == []


def test_missing_key_and_bad_options_are_fatal(tmp_path: Path, teacher: Any) -> None:
    make_images(tmp_path / "images", 1)
    no_key = run_cli(*generate_args(tmp_path / "images", tmp_path / "o", teacher.base_url), env={"OPENAI_API_KEY": ""})
    assert no_key.returncode == EXIT_FATAL and "OPENAI_API_KEY" in no_key.stderr
    bad = run_cli(*generate_args(tmp_path / "images", tmp_path / "o", teacher.base_url, "--rpm", "0"))
    assert bad.returncode == EXIT_FATAL and "rpm" in bad.stderr


def test_mixed_folder_through_the_cli(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    from tests.support.helpers import build_mixed_folder

    paths = build_mixed_folder(tmp_path / "images")
    result = run_cli(*generate_args(tmp_path / "images", tmp_path / "out", teacher.base_url))
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images_found"] == 8 and summary["files_skipped"] == 1 and summary["duplicate_files"] == 1
    assert summary["answered_now"] == 4 and summary["failed"] == 3
    failed = {Path(r["image_path"]).name: r for r in read_jsonl(tmp_path / "out" / "failed.jsonl")}
    assert set(failed) == {"truncated.jpg", "not_an_image.jpg", "empty.png"}
    assert all(r["error_class"] == "ImageError" and r["attempts"] == 1 for r in failed.values())
    assert "truncated" in failed["truncated.jpg"]["error_message"].lower()
    assert len(chat_requests(teacher.stats())) == 4  # duplicate bytes asked once, broken files never sent
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 4 and all(Path(row["images"][0]).is_absolute() for row in rows)
    assert "ünïcode name 1.jpg" in {original_of(row["images"][0], paths.values()).name for row in rows}
    assert "ünïcode name 1.jpg" in (tmp_path / "out" / "review.html").read_text(encoding="utf-8")  # its path shown


def test_original_flags_and_config_file(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 2)
    config = tmp_path / "vqa.toml"
    config.write_text(
        f'[teacher]\nbase_url = "{teacher.base_url}"\nprompts = ["From the config file?"]\n'
        'system = "You are an inspector."\nmax_retries = 1\nretry_delay = 0.05\nval_ratio = 0.5\n'
    )
    answers = tmp_path / "legacy" / "responses.json"
    answers.parent.mkdir()
    result = run_cli(
        "generate", "--config", str(config), "--image_folder_path", str(tmp_path / "images"),
        "--output_json_path", str(answers), "--max_retries", "0", "--no-progress",
    )
    assert result.returncode == EXIT_OK, result.stderr
    records = read_jsonl(answers)
    assert len(records) == 2 and {r["prompt"] for r in records} == {"From the config file?"}
    assert {r["system"] for r in records} == {"You are an inspector."}
    train = read_jsonl(answers.parent / "train.jsonl")
    val = read_jsonl(answers.parent / "val.jsonl")
    assert len(train) == 1 and len(val) == 1
    assert train[0]["messages"][0] == {"role": "system", "content": "You are an inspector."}
    assert train[0]["messages"][1]["content"] == "<image>From the config file?"
    assert TEST_API_KEY not in result.stdout + result.stderr


def test_terminal_shows_task_runs_only_with_verbose(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    make_images(tmp_path / "images", 2)
    quiet = run_cli(*generate_args(tmp_path / "images", tmp_path / "quiet", teacher.base_url))
    assert quiet.returncode == EXIT_OK, quiet.stderr
    assert "Task run 'ask-teacher[" not in quiet.stdout + quiet.stderr
    make_images(tmp_path / "more", 2)
    verbose = run_cli(*generate_args(tmp_path / "more", tmp_path / "verbose", teacher.base_url, "--verbose"))
    assert verbose.returncode == EXIT_OK, verbose.stderr
    assert "Task run 'ask-teacher[img_000.png]'" in verbose.stdout + verbose.stderr
