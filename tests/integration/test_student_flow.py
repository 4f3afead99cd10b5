"""The ``train`` flow end to end on the CPU: real ms-swift LoRA, peft loading, resume, merge, evaluation,
artifacts, and the CLI's refusals. One first run is shared by the tests that read its outputs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import torch
from PIL import Image

from flows.train import EVAL_KEY, LOSS_KEY, METRICS_KEY, train
from tests.support.helpers import run_cli
from tests.support.student_fixtures import ORIGINAL_DEFAULTS, PROMPT, colour_rows, write_jsonl
from vqa_distill.errors import EXIT_FATAL
from vqa_distill.student.params import TrainParams
from vqa_distill.student.results import read_summary


@dataclass(frozen=True)
class FirstRun:
    params: TrainParams
    checkpoint: Path
    flow_run_id: str


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model: Path,
    colour_dataset: dict[str, Path],
    prefect_api: None,
) -> FirstRun:
    """The flow with the original script's defaults, stopped after 2 optimizer steps (of 16 micro-batches)."""
    params = TrainParams(
        dataset=[str(colour_dataset["train"])],
        model_id_or_path=str(tiny_model),
        output_dir=str(tmp_path_factory.mktemp("flow") / "checkpoints"),
        max_steps=2,
        logging_steps=1,
        eval_max_new_tokens=8,
    )
    state = train(params, return_state=True)
    assert state.is_completed(), state.message
    return FirstRun(params, Path(state.result()), str(state.state_details.flow_run_id))


def test_flow_returns_the_adapter_and_the_original_flags_reach_swift(
    first_run: FirstRun, tiny_model: Path
) -> None:
    checkpoint = first_run.checkpoint
    assert checkpoint.name == "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").is_file() and (
        checkpoint / "adapter_config.json"
    ).is_file()
    run_dir = checkpoint.parent
    assert run_dir.parent == Path(first_run.params.output_dir)
    assert {"args.json", "logging.jsonl", "swift-sft.log", "loss.png", "val_dataset.jsonl"} <= {
        p.name for p in run_dir.iterdir()
    }
    args = json.loads((run_dir / "args.json").read_text(encoding="utf-8"))
    # The original flags under ms-swift's names (--num_proc is its --dataset_num_proc), with their defaults.
    not_swift_args = {"cuda_devices", "output_dir"}  # an environment variable; a parent of the run directory
    expected = {
        "dataset_num_proc" if name == "num_proc" else name: value
        for name, value in ORIGINAL_DEFAULTS.items()
        if name not in not_swift_args
    }
    expected |= {
        "model": str(tiny_model),
        "model_type": "qwen2_5_vl",
        "template": "qwen2_5_vl",
        "tuner_type": "lora",
        "torch_dtype": "float32",  # no GPU here
        "max_steps": 2,
    }
    assert {key: args[key] for key in expected} == expected
    summary = read_summary(run_dir)
    assert summary.global_step == 2 and len(summary.loss_points) == 2 and summary.eval_loss is not None


def test_the_adapter_loads_with_plain_peft_and_generates(first_run: FirstRun, tiny_model: Path) -> None:
    from peft import PeftModel
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(first_run.checkpoint)).eval()
    processor = AutoProcessor.from_pretrained(tiny_model)
    image_path = json.loads(Path(first_run.params.dataset[0]).read_text(encoding="utf-8").splitlines()[0])[
        "images"
    ][0]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(image_path)], return_tensors="pt")
    with torch.no_grad():
        tuned = model(**inputs).logits
        with model.disable_adapter():
            untouched = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert not torch.allclose(tuned, untouched), "training left the adapter at its zero initialisation"
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 4 or generated[0, -1].item() in (
        151643,
        151645,
    )


def _artifacts(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]))
        )
    return {artifact.key or "": artifact for artifact in found}


def test_flow_publishes_loss_metrics_and_evaluation(first_run: FirstRun) -> None:
    artifacts = _artifacts(first_run.flow_run_id)
    assert {LOSS_KEY, METRICS_KEY, EVAL_KEY} <= set(artifacts)
    assert "data:image/png;base64,iVBOR" in artifacts[LOSS_KEY].data
    assert (first_run.checkpoint.parent / "loss.png").read_bytes().startswith(b"\x89PNG")
    metrics = {row["metric"]: row["value"] for row in json.loads(artifacts[METRICS_KEY].data)}
    assert metrics["checkpoint"] == str(first_run.checkpoint)
    assert metrics["tuner"] == "lora" and metrics["device"] == "CPU" and metrics["global_step"] == "2"
    assert metrics["drop share (bad rows / limit)"] == "0/8 (0.0 % / 5.0 %)"
    assert "merge check" not in metrics  # nothing merged
    # The validation rows are the split ms-swift held out: 1 of 8 rows at --split_dataset_ratio 0.01.
    table = json.loads(artifacts[EVAL_KEY].data)
    split = [
        json.loads(line)
        for line in (first_run.checkpoint.parent / "val_dataset.jsonl").read_text().splitlines()
    ]
    assert len(table) == len(split) == int(metrics["eval_rows"]) == 1
    row = table[0]
    assert set(row) == {
        "row", "image", "prompt", "teacher", "student", "student_rougeL", "student_degenerate", "base", "base_rougeL",
        "base_degenerate",
    }  # fmt: skip
    assert row["prompt"] == PROMPT and row["teacher"].startswith("The tile is ")
    assert row["image"] == Path(split[0]["images"][0]["path"]).name
    # The scores are ROUGE-L F1 of each answer against the teacher's, and the metric is their mean.
    assert row["student_rougeL"] == pytest.approx(_rouge_l(row["teacher"], row["student"]), abs=1e-4)
    assert row["base_rougeL"] == pytest.approx(_rouge_l(row["teacher"], row["base"]), abs=1e-4)
    assert float(metrics["student_rougeL"]) == pytest.approx(row["student_rougeL"], abs=1e-4)
    assert float(metrics["base_rougeL"]) == pytest.approx(row["base_rougeL"], abs=1e-4)
    # Two steps from random weights: a model that answers nothing usable is said to, not scored silently.
    description = artifacts[EVAL_KEY].description or ""
    for model in ("student", "base"):
        assert metrics[f"{model}_degenerate"] == ("1" if row[f"{model}_degenerate"] else "0")
        assert (f"{model} answers are degenerate (1/1 " in description) == bool(row[f"{model}_degenerate"])
    assert "| image | teacher | student | base |" in description


def _rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1 over lower-case word tokens, by the textbook LCS (independent of rouge_score)."""
    ref, pred = re.findall(r"[a-z0-9]+", reference.lower()), re.findall(r"[a-z0-9]+", prediction.lower())
    if not ref or not pred:
        return 0.0
    lcs = [[0] * (len(pred) + 1) for _ in range(len(ref) + 1)]
    for i, r in enumerate(ref):
        for j, p in enumerate(pred):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if r == p else max(lcs[i][j + 1], lcs[i + 1][j])
    common = lcs[-1][-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def test_resume_continues_and_merge_writes_a_loadable_model(
    first_run: FirstRun, tiny_model: Path, colour_dataset: dict[str, Path], prefect_api: None
) -> None:
    from peft import PeftModel
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    params = first_run.params.model_copy(
        update={
            "resume_from_checkpoint": str(first_run.checkpoint),
            "max_steps": 4,
            "val_dataset": [str(colour_dataset["val"])],
            "merge": True,
            "eval_base": False,
        }
    )
    state = train(params, return_state=True)
    assert state.is_completed(), state.message
    checkpoint = Path(state.result())
    assert checkpoint.name == "checkpoint-4" and checkpoint.parent != first_run.checkpoint.parent
    summary = read_summary(checkpoint.parent)
    assert summary.global_step == 4
    logged = [json.loads(line) for line in (checkpoint.parent / "logging.jsonl").read_text().splitlines()]
    # Steps 1-2 were restored from the checkpoint, not trained again; the loss curve still shows them.
    assert [r["global_step/max_steps"] for r in logged if "loss" in r] == ["3/4", "4/4"]
    assert [step for step, _ in summary.loss_points] == [1, 2, 3, 4]
    args = json.loads((checkpoint.parent / "args.json").read_text(encoding="utf-8"))
    assert args["resume_from_checkpoint"] == str(first_run.checkpoint)
    assert args["val_dataset"] == [str(colour_dataset["val"])]
    # Evaluated on the given validation file (2 rows), student only.
    predictions = (checkpoint.parent / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(p)["model"] for p in predictions] == ["student", "student"]

    merged = Path(f"{checkpoint}-merged")
    assert (merged / "config.json").is_file()
    # The merge check answered the 2 validation rows (of merge_check_rows 3) with the adapter, then the merged model.
    checked = (
        (checkpoint.parent / "merge-check" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    )
    assert [json.loads(line)["model"] for line in checked] == ["adapter", "adapter", "merged", "merged"]
    metrics = {
        row["metric"]: row["value"]
        for row in json.loads(_artifacts(str(state.state_details.flow_run_id))[METRICS_KEY].data)
    }
    assert metrics["merge check"] == "2/2 identical"  # float32 on the CPU: a faithful merge answers alike
    processor = AutoProcessor.from_pretrained(tiny_model)
    inputs = processor(
        text=["<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt"
    )
    merged_model = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged, dtype=torch.float32).eval()
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(checkpoint)).eval()
    with torch.no_grad():
        assert torch.allclose(merged_model(**inputs).logits, adapted(**inputs).logits, atol=1e-4)


def test_cli_refuses_a_missing_model_path(tmp_path: Path, colour_dataset: dict[str, Path]) -> None:
    missing = tmp_path / "models" / "Qwen2.5-VL-3B-Instruct"
    out = tmp_path / "checkpoints"
    result = run_cli(
        "train", "--dataset", str(colour_dataset["train"]), "--model_id_or_path", str(missing),
        "--output_dir", str(out),
    )  # fmt: skip
    assert result.returncode == EXIT_FATAL, result.stderr[-2000:]
    assert f"error: model path '{missing}' does not exist" in result.stderr
    assert not out.exists()


def test_cli_refuses_a_bad_dataset_before_training(tmp_path: Path, tiny_model: Path) -> None:
    rows: list[Any] = colour_rows(tmp_path / "images", 3)
    rows[1] = {**rows[1], "images": []}
    rows.append({**rows[0], "images": [str(tmp_path / "images" / "deleted.png")]})
    dataset = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "checkpoints"
    result = run_cli(
        "train", "--dataset", str(dataset), "--model-id-or-path", str(tiny_model), "--output-dir", str(out),
        "--cuda-devices", "cpu",
    )  # fmt: skip
    assert result.returncode == EXIT_FATAL, result.stderr[-2000:]
    assert "2 of 4 row(s) cannot be trained on" in result.stderr
    assert f"{dataset}:2: 1 <image> tag(s) but 0 image(s)" in result.stderr
    assert f"{dataset}:4: image 0 not found" in result.stderr
    assert not out.exists()  # nothing was trained


def test_a_swift_failure_is_a_fatal_error_quoting_its_log(tmp_path: Path, tiny_model: Path) -> None:
    from vqa_distill.errors import FatalRunError
    from vqa_distill.student import training

    dataset = write_jsonl(tmp_path / "train.jsonl", colour_rows(tmp_path / "images", 2))
    params = TrainParams(
        dataset=[str(dataset)], model_id_or_path=str(tiny_model), cuda_devices="cpu", output_dir=str(tmp_path / "out"),
        swift_args=["--no_such_swift_flag", "1"],
    )  # fmt: skip
    with pytest.raises(FatalRunError, match="swift sft failed with exit code 1") as failed:
        training.train(training.prepare(params, log=lambda _: None))
    assert "remaining_argv: ['--no_such_swift_flag', '1']" in str(failed.value)
    (log,) = (tmp_path / "out").glob("swift-sft.log.*")
    assert str(log) in str(failed.value) and "--no_such_swift_flag" in log.read_text(encoding="utf-8")
