"""``conversation``: one multi-turn row per image, the image tag in the first user turn only, trained by ms-swift.

The teacher writes and answers the questions over HTTP; the rows pass the student's preflight (structure,
images, the real template's token count) and train the tiny Qwen2.5-VL for two LoRA steps on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.helpers import TINY_TRAINING
from tests.support.qa_helpers import qa_images, qa_params, read_jsonl_lines
from tests.support.row_pictures import original_of
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.student import training
from vqa_distill.student.params import TrainParams
from vqa_distill.student.preflight import check_files

SYSTEM = "You are a helpful assistant."


def test_conversation_rows_pass_the_preflight_and_train_with_ms_swift(
    tmp_path: Path, teacher: Any, api_key_env: str, tiny_model: Path
) -> None:
    sizes = qa_images(tmp_path / "images", 4, prefix="talk")
    params = qa_params(
        tmp_path / "images", tmp_path / "out", teacher.base_url, questions=3, conversation=True, system=SYSTEM,
        question_style="conversation",
    )  # fmt: skip
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0
    train = tmp_path / "out" / "train.jsonl"
    rows = read_jsonl_lines(train)
    assert len(rows) == 4  # one row per image
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
        users = [m["content"] for m in row["messages"] if m["role"] == "user"]
        assert users[0].startswith("<image>") and not any("<image>" in u for u in users[1:])
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert all(sizes[original_of(row["images"][0], sizes)] in answer for answer in answers)

    assert check_files([str(train)], max_length=4096).ok  # structure and images, without a model

    training_params = TrainParams(
        dataset=[str(train)], model_id_or_path=str(tiny_model), output_dir=str(tmp_path / "ckpt"), system=SYSTEM,
        **TINY_TRAINING,
    )  # fmt: skip
    prepared = training.prepare(training_params, log=lambda _: None)  # the real template counts every token
    assert (prepared.total_rows, prepared.dropped_rows) == (4, 0)
    summary = training.train(prepared)
    assert summary.global_step == 2
    assert (Path(summary.checkpoint) / "adapter_model.safetensors").is_file()
