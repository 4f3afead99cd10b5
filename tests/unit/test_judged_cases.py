"""The inputs of an evaluation: its cases (an ms-swift jsonl and the meta file beside it, line for line),
the checkpoint's args.json, and the setup made of them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vqa_distill.dataset.build import STATS_FILE, meta_file
from vqa_distill.dataset.rows import make_row
from vqa_distill.errors import ConfigError
from vqa_distill.student.judged.cases import KIND_UNKNOWN, EvalCase, load_cases
from vqa_distill.student.judged.inference import TrainedWith
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.student.judged.setup import prepare_eval, teacher_of

SYSTEM = "You are a helpful assistant."


def _write(path: Path, rows: list[Any]) -> Path:
    """Rows as JSON lines; a string is written as the raw line."""
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(image: str, question: str, answer: str, *, system: str | None = SYSTEM) -> dict[str, Any]:
    return make_row(image_path=image, prompt=question, answer=answer, system=system)


def _meta(kind: str, prompt: str, sha256: str) -> dict[str, str]:
    return {"kind": kind, "prompt": prompt, "sha256": sha256}


def test_the_meta_file_is_read_line_for_line_blank_lines_and_skipped_rows_included(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "val.jsonl", [
        _row("/img/a.png", "What is broken?", "The hinge."),
        "",  # a blank line is no row, in the dataset as in its meta file
        {"messages": [{"role": "user", "content": "<image>Hi"}], "images": ["/img/b.png"]},  # no answer
        _row("/img/c.png", "Where is the scratch?", "On the lid."),
    ])  # fmt: skip
    _write(meta_file(dataset), [
        _meta("detail", "Describe the defects.", "a" * 64),
        _meta("conversation", "Describe the defects.", "b" * 64),
        _meta("reasoning", "Focus on the lid.", "c" * 64),
    ])  # fmt: skip
    cases = load_cases(dataset)
    assert [(c.index, c.image, c.kind, c.prompt, c.sha256) for c in cases] == [
        (0, "/img/a.png", "detail", "Describe the defects.", "a" * 64),
        (
            1,
            "/img/c.png",
            "reasoning",
            "Focus on the lid.",
            "c" * 64,
        ),  # its own line's meta, not the next one
    ]
    first = cases[0]
    assert first.question == "What is broken?" and first.reference == "The hinge."
    assert first.messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "<image>What is broken?"},
    ]  # the prompt as the student saw it in training, the teacher's answer left out


def test_a_stale_meta_file_with_another_line_count_is_ignored(tmp_path: Path) -> None:
    dataset = _write(
        tmp_path / "val.jsonl", [_row(f"/img/{i}.png", f"Question {i}?", "Answer.") for i in range(3)]
    )
    _write(meta_file(dataset), [_meta("detail", "Old prompt.", "d" * 64)] * 2)  # from an earlier build
    cases = load_cases(dataset)
    assert [c.kind for c in cases] == [KIND_UNKNOWN] * 3
    assert [c.prompt for c in cases] == [
        "Question 0?",
        "Question 1?",
        "Question 2?",
    ]  # the question stands in
    assert all(c.sha256 is None or c.sha256 != "d" * 64 for c in cases)


def test_ms_swift_val_dataset_format_with_json_string_messages_and_path_images(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "<image>What colour is this tile?"},
        {"role": "assistant", "content": "The tile is yellow."},
    ]
    row = {
        "messages": [json.dumps(m, separators=(",", ":")) for m in messages],
        "images": [{"bytes": None, "path": "/data/tile_003_yellow.png"}],
        "dataset": "/data/train.jsonl",
    }
    (case,) = load_cases(_write(tmp_path / "val_dataset.jsonl", [row]))
    assert case.image == "/data/tile_003_yellow.png"
    assert case.question == "What colour is this tile?" and case.reference == "The tile is yellow."
    assert case.messages == messages[:2] and case.kind == KIND_UNKNOWN


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [{"role": "user", "content": "<image>Q?"}], "images": ["/a.png"]},  # no answer at all
        {"messages": [{"role": "user", "content": "<image>Q?"}, {"role": "assistant", "content": "A."},
                      {"role": "user", "content": "And?"}], "images": ["/a.png"]},  # ends with a question
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}], "images": []},
        {"messages": [{"role": "user", "content": "<image><image>Q?"}, {"role": "assistant", "content": "A."}],
         "images": ["/a.png", "/b.png"]},  # two images
        ["not", "a", "row"],
    ],
    ids=["no-assistant", "last-turn-user", "no-image", "two-images", "not-an-object"],
)  # fmt: skip
def test_rows_without_one_image_and_a_closing_answer_are_skipped(tmp_path: Path, row: Any) -> None:
    dataset = _write(tmp_path / "val.jsonl", [row, _row("/img/ok.png", "Fine?", "Yes.")])
    cases = load_cases(dataset)
    assert [(c.index, c.image) for c in cases] == [(0, "/img/ok.png")]


def test_a_line_that_is_not_json_is_a_config_error_naming_file_and_line(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "val.jsonl", [_row("/a.png", "Q?", "A."), "", '{"messages": [oops'])
    with pytest.raises(ConfigError, match=r"val\.jsonl:3 is not JSON"):
        load_cases(dataset)


def test_a_missing_dataset_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no dataset at"):
        load_cases(tmp_path / "missing.jsonl")


def test_limit_counts_cases_not_lines(tmp_path: Path) -> None:
    rows: list[Any] = [{"messages": [], "images": []}]  # skipped: does not count against the limit
    rows += [_row(f"/img/{i}.png", f"Q{i}?", f"A{i}.") for i in range(5)]
    dataset = _write(tmp_path / "val.jsonl", rows)
    assert [c.image for c in load_cases(dataset, limit=2)] == ["/img/0.png", "/img/1.png"]
    assert len(load_cases(dataset)) == 5


def test_rows_without_a_system_message_get_the_training_system_prompt(tmp_path: Path) -> None:
    dataset = _write(
        tmp_path / "val.jsonl", [_row("/a.png", "Q?", "A.", system=None), _row("/b.png", "Q?", "A.")]
    )
    plain, own = load_cases(dataset, system="Trained with this.")
    assert plain.messages[0] == {"role": "system", "content": "Trained with this."}
    assert own.messages[0] == {"role": "system", "content": SYSTEM}  # a row's own system prompt stays
    (bare,) = load_cases(_write(tmp_path / "bare.jsonl", [_row("/a.png", "Q?", "A.", system=None)]))
    assert [m["role"] for m in bare.messages] == ["user"]


def test_without_meta_the_sha256_is_the_image_files_own(tmp_path: Path) -> None:
    """The judge's request key holds the image's hash: two pictures asked the same must not share a verdict."""
    paths = []
    for name, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    dataset = _write(tmp_path / "val_dataset.jsonl", [_row(str(p), "What colour?", "Red.") for p in paths])
    cases = load_cases(dataset)
    assert [c.sha256 for c in cases] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_a_case_round_trips_through_json() -> None:
    case = EvalCase(
        0, "/a.png", "Q?", "A.", "detail", "P.", [{"role": "user", "content": "<image>Q?"}], "e" * 64
    )
    assert EvalCase.from_json(json.loads(json.dumps(case.to_json()))) == case


@pytest.mark.parametrize("bad", ['{"kind": "detail", "pro', '["detail"]'], ids=["cut-short", "not-an-object"])
def test_a_meta_file_that_is_not_json_objects_is_ignored_like_a_stale_one(tmp_path: Path, bad: str) -> None:
    dataset = _write(tmp_path / "val.jsonl", [_row("/a.png", "Q1?", "A."), _row("/b.png", "Q2?", "A.")])
    _write(meta_file(dataset), [_meta("detail", "P.", "f" * 64), bad])
    assert [(c.kind, c.prompt) for c in load_cases(dataset)] == [(KIND_UNKNOWN, "Q1?"), (KIND_UNKNOWN, "Q2?")]


# --- the checkpoint: what its args.json says about how the student was trained ---

ARGS = {"model": "/models/tiny-qwen", "model_type": "qwen2_5_vl", "template": "qwen2_5_vl",
        "system": SYSTEM, "max_pixels": 50176, "tuner_type": "lora"}  # fmt: skip


def _checkpoint(
    folder: Path, args: dict[str, Any] | str | None, *, adapter: bool, in_run_dir: bool = False
) -> Path:
    folder.mkdir(parents=True)
    if adapter:
        (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
    if args is not None:
        text = args if isinstance(args, str) else json.dumps(args)
        (folder.parent if in_run_dir else folder).joinpath("args.json").write_text(text, encoding="utf-8")
    return folder


def test_an_adapter_checkpoint_is_the_base_model_with_the_adapter(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path / "v0-run" / "checkpoint-2", ARGS, adapter=True)
    trained = TrainedWith.read(checkpoint)
    assert trained == TrainedWith(
        trained_from="/models/tiny-qwen", student="/models/tiny-qwen", model_type="qwen2_5_vl",
        template="qwen2_5_vl", system=SYSTEM, max_pixels=50176, adapter=True,
    )  # fmt: skip


@pytest.mark.parametrize("tuner", [{"tuner_type": "full"}, {"tuner_type": None, "train_type": "full"}])
def test_a_full_checkpoint_is_the_student_itself(tmp_path: Path, tuner: dict[str, Any]) -> None:
    checkpoint = _checkpoint(tmp_path / "v0-run" / "checkpoint-4", {**ARGS, **tuner}, adapter=False)
    trained = TrainedWith.read(checkpoint)
    assert (trained.student, trained.trained_from, trained.adapter) == (
        str(checkpoint),
        "/models/tiny-qwen",
        False,
    )
    assert trained.max_pixels == 50176


def test_a_merged_model_reads_its_run_directorys_args(tmp_path: Path) -> None:
    merged = _checkpoint(tmp_path / "v0-run" / "checkpoint-2-merged", ARGS, adapter=False, in_run_dir=True)
    trained = TrainedWith.read(merged)
    assert (trained.student, trained.trained_from, trained.adapter) == (
        str(merged),
        "/models/tiny-qwen",
        False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (None, "has no args.json"),
        ("{not json", "args.json is not"),
        ({"tuner_type": "lora"}, "names no model"),
    ],
    ids=["missing", "not-json", "no-model"],
)
def test_a_checkpoint_without_usable_args_is_a_config_error(tmp_path: Path, args: Any, says: str) -> None:
    checkpoint = _checkpoint(tmp_path / "v0-run" / "checkpoint-2", args, adapter=True)
    with pytest.raises(ConfigError, match=says):
        TrainedWith.read(checkpoint)


# --- the setup: what an evaluation settles before it spends anything ---


def test_setup_refuses_to_judge_nothing(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "val.jsonl", [_row("/a.png", "Q?", "A.")])
    with pytest.raises(ConfigError, match="nothing to judge"):
        prepare_eval(EvalParams(dataset=str(dataset)))


def test_setup_takes_the_checkpoints_system_prompt_and_the_datasets_teacher(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "run" / "val.jsonl", [_row("/a.png", "Q?", "A.", system=None)])
    (tmp_path / "run" / STATS_FILE).write_text(
        json.dumps({"teacher_model": "gpt-4o", "teacher_base_url": "http://127.0.0.1:9/v1"}), encoding="utf-8"
    )
    checkpoint = _checkpoint(tmp_path / "ckpt" / "v0-run" / "checkpoint-2", ARGS, adapter=True)
    setup = prepare_eval(EvalParams(dataset=str(dataset), checkpoint=str(checkpoint)))
    assert setup.cases[0].messages[0] == {"role": "system", "content": SYSTEM}
    assert setup.out == checkpoint.parent / "eval-judged-checkpoint-2"
    assert (setup.judge.model, setup.judge.base_url, setup.judge.temperature) == (
        "gpt-4o",
        "http://127.0.0.1:9/v1",
        0.0,
    )


def test_a_masked_teacher_endpoint_is_not_called(tmp_path: Path) -> None:
    (tmp_path / STATS_FILE).write_text(
        json.dumps({"teacher_model": "m", "teacher_base_url": "https://user:***@host/v1"}), encoding="utf-8"
    )
    assert teacher_of(tmp_path / "val.jsonl") == ("m", None)
    (tmp_path / STATS_FILE).write_text("{cut", encoding="utf-8")
    assert teacher_of(tmp_path / "val.jsonl") == (None, None)


def test_setup_refuses_a_missing_answers_file_before_any_run(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "val.jsonl", [_row("/a.png", "Q?", "A.")])
    with pytest.raises(ConfigError, match="no answers file at"):
        prepare_eval(EvalParams(dataset=str(dataset), answers_file=str(tmp_path / "answers.jsonl")))
    with pytest.raises(ConfigError, match="no dataset at"):  # the dataset is named first
        prepare_eval(EvalParams(dataset=str(tmp_path / "none.jsonl"), answers_file=str(tmp_path / "x")))
