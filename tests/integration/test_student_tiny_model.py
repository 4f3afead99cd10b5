"""The tiny offline model: Qwen's token ids kept, small, and trainable by real ms-swift for each arch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.student_fixtures import colour_rows, write_jsonl
from vqa_distill.cli.student import run_tiny_model
from vqa_distill.student import training
from vqa_distill.student.model_resolve import resolve_model
from vqa_distill.student.params import TrainParams, Tuner
from vqa_distill.student.tiny_model import (
    FIRST_SPECIAL_ID,
    IMAGE_PAD_ID,
    VOCAB_SIZE,
    build_tiny_model,
    describe,
    learned_merges,
)


@pytest.mark.parametrize(
    ("arch", "architecture"),
    [
        ("qwen2_vl", "Qwen2VLForConditionalGeneration"),
        ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
        ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
    ],
)
def test_tiny_model_keeps_qwen_ids_and_is_small(tmp_path: Path, arch: str, architecture: str) -> None:
    from transformers import AutoTokenizer

    path = build_tiny_model(tmp_path / arch, arch=arch)  # type: ignore[arg-type]
    info = describe(path)
    assert info["architectures"] == [architecture]
    assert info["bytes"] < 20e6  # ~10 MB of weights (bf16, tied embeddings) + a 5 MB tokenizer
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert config["image_token_id"] == IMAGE_PAD_ID == 151655
    assert config["text_config"]["vocab_size"] == VOCAB_SIZE == 151936
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|file_sep|>"])
    assert ids == [151643, 151644, 151645, 151655, 151664]
    assert tokenizer("<|im_start|>user\n<|image_pad|>").input_ids[0] == 151644
    assert tokenizer.decode(tokenizer("Grüße, 你好").input_ids) == "Grüße, 你好"
    assert resolve_model(str(path)).model_type == arch


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_a_wider_model_with_english_merges_keeps_qwen_ids_and_runs(tmp_path: Path, arch: str) -> None:
    """The demo's kind of student: wider, and a tokenizer whose merges make English 3x shorter than bytes."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    path = build_tiny_model(tmp_path / arch, arch=arch, hidden=64, layers=3, merges=4000)  # type: ignore[arg-type]
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    text_config = config["text_config"]
    assert (text_config["hidden_size"], text_config["num_hidden_layers"], text_config["num_attention_heads"]) == (64, 3, 4)
    assert text_config["vocab_size"] == VOCAB_SIZE and config["image_token_id"] == IMAGE_PAD_ID
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|image_pad|>"]) == [151643, 151645, 151655]
    sentence = "Looking closely: the picture is mostly gray with some white, and the brightest area is the upper left."
    ids = tokenizer(sentence).input_ids
    assert len(ids) * 2.5 < len(sentence) and max(ids) < FIRST_SPECIAL_ID
    assert tokenizer.decode(ids) == sentence
    assert tokenizer.decode(tokenizer("Grüße, 你好 <|im_start|>").input_ids) == "Grüße, 你好 <|im_start|>"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), VOCAB_SIZE)


def test_learned_merges_are_the_same_every_time() -> None:
    merges = learned_merges(500)
    assert len(merges) == 500 and merges == learned_merges(500)
    assert all(isinstance(left, str) and isinstance(right, str) for left, right in merges)


def test_tiny_model_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Args:
        out = str(tmp_path / "cli-model")
        arch = "qwen2_5_vl"
        seed = 1

    assert run_tiny_model(Args()) == 0  # type: ignore[arg-type]
    assert "Qwen2_5_VLForConditionalGeneration" in capsys.readouterr().out
    assert (tmp_path / "cli-model" / "model.safetensors").is_file()


@pytest.mark.parametrize(("arch", "tuner"), [("qwen2_vl", "dora"), ("qwen3_vl", "full")])
def test_other_archs_and_tuners_train_through_swift(tmp_path: Path, arch: str, tuner: Tuner) -> None:
    """Qwen2-VL and Qwen3-VL resolved from config.json and encoded by their own template; DoRA and full
    fine-tuning on them (LoRA on Qwen2.5-VL is test_student_flow's): one real step each."""
    model = build_tiny_model(tmp_path / f"tiny-{arch}", arch=arch)  # type: ignore[arg-type]
    dataset = write_jsonl(tmp_path / "train.jsonl", colour_rows(tmp_path / "images", 4))
    params = TrainParams(
        dataset=[str(dataset)], model_id_or_path=str(model), output_dir=str(tmp_path / "out"), cuda_devices="cpu",
        tuner=tuner, max_steps=1, gradient_accumulation_steps=1, split_dataset_ratio=0.0, eval_limit=0, num_proc=1,
    )  # fmt: skip
    prepared = training.prepare(params, log=lambda _: None)
    summary = training.train(prepared)
    assert summary.global_step == 1
    checkpoint = Path(summary.checkpoint)
    args = json.loads((Path(summary.run_dir) / "args.json").read_text(encoding="utf-8"))
    assert (args["model_type"], args["template"]) == (arch, arch)
    if tuner == "full":
        assert args["tuner_type"] == "full"
        assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "config.json").is_file()
    else:
        adapter = json.loads((checkpoint / "adapter_config.json").read_text(encoding="utf-8"))
        assert (args["tuner_type"], args["use_dora"], adapter["use_dora"]) == ("lora", True, True)
