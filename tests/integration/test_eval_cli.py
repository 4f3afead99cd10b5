"""``vqa-distill eval`` as a user runs it: a LoRA checkpoint of the tiny model, trained by ms-swift on the CPU on
rows the offline teacher wrote, answers the held-out rows (and so does its base model) and the offline teacher
judges. And the command's refusals: one plain line, exit 3, no traceback and no flow run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import TEST_API_KEY, TINY_TRAINING, make_images, params_for, run_cli
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.errors import EXIT_FATAL
from vqa_distill.student import training
from vqa_distill.student.params import TrainParams

MAX_PIXELS = 112 * 112  # not ms-swift's default: the eval must take it from the checkpoint's args.json
SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Trained:
    val: Path
    checkpoint: Path
    base_url: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, teacher_server: Any, tiny_model: Path) -> Trained:
    """Four pictures asked about by the offline teacher (two rows to train on, two held out), then 2 LoRA steps."""
    root = tmp_path_factory.mktemp("eval-cli")
    make_images(root / "images", 4, prefix="evalcli", size=(64, 48))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", TEST_API_KEY)
        params = params_for(
            root / "images", root / "run", teacher_server.base_url, val_ratio=0.5, system=SYSTEM
        )
        outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0, outcome
    training_params = TrainParams.model_validate({
        "dataset": [str(root / "run" / "train.jsonl")], "model_id_or_path": str(tiny_model),
        "output_dir": str(root / "ckpt"), "system": SYSTEM, "max_pixels": MAX_PIXELS, **TINY_TRAINING,
    })  # fmt: skip
    summary = training.train(training.prepare(training_params, log=lambda _: None))
    checkpoint = Path(summary.checkpoint)
    assert (checkpoint / "adapter_config.json").is_file()
    return Trained(root / "run" / "val.jsonl", checkpoint, teacher_server.base_url)


def _one_plain_line(done: Any) -> str:
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == EXIT_FATAL, output
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    assert output.startswith("error: "), output
    return str(output)


def test_eval_answers_with_the_checkpoint_and_its_base_and_writes_the_report(
    trained: Trained, tiny_model: Path
) -> None:
    done = run_cli(
        "eval", "--dataset", str(trained.val), "--checkpoint", str(trained.checkpoint),
        "--base-url", trained.base_url, "--cuda-devices", "cpu", "--max-new-tokens", "16",
        "--rpm", "6000", "--tpm", "10000000",
        env={"OPENAI_API_KEY": TEST_API_KEY}, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = trained.checkpoint.parent / f"eval-judged-{trained.checkpoint.name}"
    lines = done.stdout.strip().splitlines()
    assert lines[-3].startswith("student vs teacher: win-or-tie ") and "vs base: " in lines[-3], done.stdout
    assert lines[-2:] == [f"page: {out / 'eval.html'}", f"numbers: {out / 'eval.json'}"]
    assert (out / "eval.html").is_file() and (out / "win_rate.png").is_file()

    spec = json.loads((out / "infer_spec.json").read_text(encoding="utf-8"))
    assert spec["max_pixels"] == MAX_PIXELS  # the training run's pixel budget, read back from args.json
    models = {m["name"]: m for m in spec["models"]}
    assert models["student"]["model"] == models["base"]["model"] == str(tiny_model)
    assert models["student"]["adapters"] == [str(trained.checkpoint)] and models["base"]["adapters"] == []
    assert spec["max_new_tokens"] == 16 and spec["torch_dtype"] == "float32"

    rows = len(read_jsonl(trained.val))
    answered = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    for model in ("student", "base"):
        assert sorted(a["index"] for a in answered if a["model"] == model) == list(range(rows))
    document = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert document["headline"] == lines[-3] and len(document["cases"]) == rows == 2
    for case in document["cases"]:
        assert set(case["answers"]) == {"teacher", "student", "base"}
        assert set(case["verdicts"]) == {"teacher", "base"}  # judged, or decided by a degenerate answer
        assert case["case"]["kind"] == "prompt" and case["case"]["sha256"]  # from val.meta.jsonl
    assert document["summary"]["rates"]["all"]["teacher"]["n"] == rows


def test_a_missing_dataset_is_one_plain_line(tmp_path: Path) -> None:
    done = run_cli(
        "eval",
        "--dataset",
        str(tmp_path / "missing.jsonl"),
        "--answers-file",
        str(tmp_path / "x"),
        timeout=120,
    )
    assert (
        _one_plain_line(done)
        == f"error: no dataset at {tmp_path / 'missing.jsonl'}: pass a run's val.jsonl or an ms-swift jsonl"
    )


def test_nothing_to_judge_is_one_plain_line(tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("{}\n", encoding="utf-8")
    output = _one_plain_line(run_cli("eval", "--dataset", str(dataset), timeout=120))
    assert "nothing to judge" in output and "--checkpoint" in output and "--answers-file" in output


def test_a_folder_without_args_json_is_one_plain_line(tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("{}\n", encoding="utf-8")
    output = _one_plain_line(
        run_cli("eval", "--dataset", str(dataset), "--checkpoint", str(tmp_path), timeout=120)
    )
    assert output == f"error: {tmp_path} has no args.json: pass a checkpoint written by `vqa-distill train`"
