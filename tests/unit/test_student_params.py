"""Pure parts of the student stage: flags, parameters, ms-swift argv, model resolution, scoring."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.student_fixtures import ORIGINAL_DEFAULTS
from vqa_distill.cli.student import add_train_arguments, params_from_args
from vqa_distill.errors import ModelNotFoundError
from vqa_distill.student.argv import export_argv, sft_argv, sft_env, single_device_env
from vqa_distill.student.device import CPU, DeviceInfo, choose_dtype
from vqa_distill.student.evaluate import eval_row
from vqa_distill.student.metrics import rouge_l_many
from vqa_distill.student.model_resolve import ResolvedModel, hub_types, resolve_model
from vqa_distill.student.params import TrainParams
from vqa_distill.student.pixels import (
    PixelRule,
    choose_pixel_budget,
    default_max_pixels,
    fitting_max_pixels,
    image_tokens_at_most,
    pixel_rule,
)

SWIFT = [sys.executable, "-m", "swift.cli.main"]
MODEL = ResolvedModel("/models/qwen", "qwen2_5_vl", "qwen2_5_vl", True)
ONE_GPU = DeviceInfo(count=1, bf16=True, names=["NVIDIA H100"], memory_gib=[79.1])
TWO_OLD_GPUS = DeviceInfo(count=2, bf16=False, names=["Tesla V100", "Tesla V100"], memory_gib=[31.7, 31.7])


def parse(*argv: str) -> TrainParams:
    """Parse ``vqa-distill train`` flags into TrainParams."""
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return params_from_args(parser.parse_args(list(argv)))


def test_defaults_are_the_original_scripts() -> None:
    params = TrainParams(dataset=["d.jsonl"], model_id_or_path="m")
    assert {name: getattr(params, name) for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS
    assert params.tuner == "lora"


def test_underscore_and_dash_spellings_give_the_same_params() -> None:
    underscores = parse(
        "--dataset", "a.jsonl", "b.jsonl", "--model_id_or_path", "Qwen/Qwen2.5-VL-3B-Instruct",
        "--lora_rank", "16", "--gradient_accumulation_steps", "4", "--model_name", "小白", "Xiao Bai",
        "--split_dataset_ratio", "0.1", "--skip_bad_rows", "--no-eval_base", "--tuner", "dora",
    )  # fmt: skip
    dashes = parse(
        "--dataset", "a.jsonl", "b.jsonl", "--model-id-or-path", "Qwen/Qwen2.5-VL-3B-Instruct",
        "--lora-rank", "16", "--gradient-accumulation-steps", "4", "--model-name", "小白", "Xiao Bai",
        "--split-dataset-ratio", "0.1", "--skip-bad-rows", "--no-eval-base", "--tuner", "dora",
    )  # fmt: skip
    assert underscores == dashes
    assert underscores.lora_rank == 16 and underscores.skip_bad_rows and not underscores.eval_base
    assert underscores.model_name == ["小白", "Xiao Bai"]
    # Flags not given keep TrainParams' defaults.
    assert underscores.num_train_epochs == 5 and underscores.system == "You are a helpful assistant."


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TrainParams(dataset=["d"], model_id_or_path="m", train_type="lora")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="QLoRA needs a CUDA GPU"):
        TrainParams(dataset=["d"], model_id_or_path="m", tuner="qlora", cuda_devices="cpu")
    with pytest.raises(ValidationError, match="merge"):
        TrainParams(dataset=["d"], model_id_or_path="m", tuner="full", merge=True)
    with pytest.raises(ValidationError):
        TrainParams(dataset=["d"], model_id_or_path="m", split_dataset_ratio=1.5)
    with pytest.raises(SystemExit):
        parse("--model_id_or_path", "m")  # --dataset is required


def test_sft_argv_passes_every_original_flag_with_its_default() -> None:
    params = TrainParams(dataset=["/data/train.jsonl"], model_id_or_path="/models/qwen")
    assert sft_argv(params, MODEL, CPU) == [
        *SWIFT, "sft",
        "--model", "/models/qwen", "--model_type", "qwen2_5_vl", "--template", "qwen2_5_vl",
        "--dataset", "/data/train.jsonl",
        "--tuner_type", "lora", "--lora_rank", "8", "--lora_alpha", "32",
        "--torch_dtype", "float32",
        "--system", "You are a helpful assistant.",
        "--output_dir", "checkpoint",
        "--data_seed", "42",
        "--max_length", "2048",
        "--split_dataset_ratio", "0.01",
        "--dataset_num_proc", "4",
        "--model_name", "小黄", "Xiao Huang",
        "--model_author", "魔搭", "ModelScope",
        "--learning_rate", "0.0001",
        "--per_device_train_batch_size", "1",
        "--per_device_eval_batch_size", "1",
        "--gradient_accumulation_steps", "16",
        "--num_train_epochs", "5.0",
        "--logging_steps", "5",
        "--check_model", "false",
        "--dataloader_num_workers", "0",
    ]  # fmt: skip


def test_sft_argv_options_and_cleaned_files() -> None:
    params = TrainParams(
        dataset=["/data/train.jsonl"],
        val_dataset=["/data/val.jsonl"],
        model_id_or_path="/models/qwen",
        self_cognition=500,
        max_steps=10,
        save_steps=5,
        max_pixels=1003520,
        resume_from_checkpoint="/ckpt/v0/checkpoint-5",
        swift_args=["--deepspeed", "zero2"],
    )
    argv = sft_argv(params, MODEL, ONE_GPU, dataset=["/clean/train.jsonl"], val_dataset=["/clean/val.jsonl"])
    joined = " ".join(argv)
    assert "--dataset /clean/train.jsonl swift/self-cognition#500 --val_dataset /clean/val.jsonl --tuner_type" in joined
    assert "--torch_dtype bfloat16" in joined
    assert "--max_steps 10 --save_steps 5 --eval_steps 5 --max_pixels 1003520" in joined
    assert "--resume_from_checkpoint /ckpt/v0/checkpoint-5" in joined
    assert argv[-2:] == ["--deepspeed", "zero2"]
    assert "--dataloader_num_workers" not in argv  # workers help on a GPU machine


@pytest.mark.parametrize(
    ("tuner", "device", "expected"),
    [
        ("dora", CPU, ["--tuner_type", "lora", "--lora_rank", "8", "--lora_alpha", "32", "--use_dora", "true"]),
        ("full", CPU, ["--tuner_type", "full"]),
        (
            "qlora",
            ONE_GPU,
            ["--tuner_type", "lora", "--lora_rank", "8", "--lora_alpha", "32", "--quant_method", "bnb",
             "--quant_bits", "4", "--bnb_4bit_quant_type", "nf4", "--bnb_4bit_use_double_quant", "true",
             "--bnb_4bit_compute_dtype", "bfloat16"],
        ),
    ],
)  # fmt: skip
def test_tuner_flags(tuner: str, device: DeviceInfo, expected: list[str]) -> None:
    params = TrainParams(dataset=["d"], model_id_or_path="m", tuner=tuner)  # type: ignore[arg-type]
    argv = sft_argv(params, MODEL, device)
    start = argv.index("--tuner_type")
    assert argv[start : start + len(expected)] == expected


def test_devices_and_dtype() -> None:
    assert sft_env(CPU, []) == {"CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    assert sft_env(ONE_GPU, ["3"]) == {"CUDA_VISIBLE_DEVICES": "3", "PYTHONUNBUFFERED": "1"}
    # Several GPUs: ms-swift's launcher starts torchrun; merging and evaluation use the first one.
    assert sft_env(TWO_OLD_GPUS, ["0", "1"]) == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "PYTHONUNBUFFERED": "1",
        "NPROC_PER_NODE": "2",
    }
    assert single_device_env(TWO_OLD_GPUS, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "0"
    assert [choose_dtype("auto", d) for d in (CPU, ONE_GPU, TWO_OLD_GPUS)] == ["float32", "bfloat16", "float16"]
    assert choose_dtype("float32", ONE_GPU) == "float32"
    assert TrainParams(dataset=["d"], model_id_or_path="m", cuda_devices="cpu").device_ids == []
    assert TrainParams(dataset=["d"], model_id_or_path="m", cuda_devices="0, 1").device_ids == ["0", "1"]


def test_export_argv() -> None:
    assert export_argv("/r/checkpoint-4", "/r/checkpoint-4-merged") == [
        *SWIFT, "export", "--adapters", "/r/checkpoint-4", "--merge_lora", "true", "--output_dir", "/r/checkpoint-4-merged",
    ]  # fmt: skip


def _model_dir(root: Path, name: str, config: dict[str, object]) -> Path:
    path = root / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("config_type", "expected"),
    [
        ("qwen2_vl", ("qwen2_vl", "qwen2_vl")),
        ("qwen2_5_vl", ("qwen2_5_vl", "qwen2_5_vl")),
        ("qwen3_vl", ("qwen3_vl", "qwen3_vl")),
    ],
)
def test_a_local_directory_is_resolved_by_its_config(tmp_path: Path, config_type: str, expected: tuple[str, str]) -> None:
    # A name ms-swift cannot match (and, for Qwen2-VL/2.5-VL, an architecture it finds ambiguous).
    path = _model_dir(tmp_path, "my-finetuned-student", {"model_type": config_type})
    resolved = resolve_model(str(path))
    assert (resolved.model_type, resolved.template) == expected
    assert resolved.model == str(path.resolve()) and resolved.is_local
    assert resolve_model(str(path), template="qvq").template == "qvq"


def test_model_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist") as missing:
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    assert str(tmp_path / "no" / "such" / "model") in str(missing.value)
    llama = _model_dir(tmp_path, "llama", {"model_type": "llama"})
    with pytest.raises(ModelNotFoundError, match="model_type 'llama'") as unknown:
        resolve_model(str(llama))
    assert str(llama) in str(unknown.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(str(empty))
    adapter = _model_dir(tmp_path, "checkpoint-10", {"model_type": "qwen2_5_vl"})
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="adapter checkpoint"):
        resolve_model(str(adapter))
    with pytest.raises(ModelNotFoundError, match="not a local directory"):
        resolve_model("meta-llama/Llama-3.1-8B-Instruct")


def test_hub_ids() -> None:
    assert hub_types("Qwen/Qwen2.5-VL-3B-Instruct") == ("qwen2_5_vl", "qwen2_5_vl")
    assert hub_types("Qwen/Qwen2-VL-7B-Instruct") == ("qwen2_vl", "qwen2_vl")
    assert hub_types("Qwen/Qwen3-VL-8B-Instruct") == ("qwen3_vl", "qwen3_vl")
    assert hub_types("Qwen/Qwen3-VL-30B-A3B-Instruct") == ("qwen3_vl_moe", "qwen3_vl")
    assert hub_types("Qwen/QVQ-72B-Preview") == ("qwen2_vl", "qvq")
    resolved = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert resolved == ResolvedModel("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", "qwen2_5_vl", False)


def test_rouge_l_scores_chinese_and_english() -> None:
    # rouge_score's own tokenizer drops every non-ASCII character: Chinese would always score 0.
    scores = rouge_l_many(["这是红色的瓷砖", "The tile is red.", "完全不同"], ["这是红色瓷砖", "the tile is RED", "蓝色"])
    assert scores[0] == pytest.approx(2 * 6 / (7 + 6))
    assert scores[1] == pytest.approx(1.0)
    assert scores[2] == 0.0


def test_eval_row_reads_both_row_shapes() -> None:
    plain = {
        "messages": [{"role": "user", "content": "<image>Q?"}, {"role": "assistant", "content": "A."}],
        "images": ["/i.png"],
    }
    # ms-swift's val_dataset.jsonl: messages as JSON strings, images as {"path", "bytes"}.
    swift_split = {
        "messages": [json.dumps(m) for m in plain["messages"]],  # type: ignore[attr-defined]
        "images": [{"bytes": None, "path": "/i.png"}],
    }
    expected = eval_row(plain, system="S")
    assert expected is not None and expected == eval_row(swift_split, system="S")
    assert expected.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "<image>Q?"}]
    assert (expected.images, expected.reference) == (["/i.png"], "A.")


@pytest.mark.parametrize(
    ("model_type", "max_length", "expected"),
    [
        ("qwen2_5_vl", 2048, 802_816),  # 1024 tokens × 28²
        ("qwen2_vl", 2048, 802_816),
        ("qwen2_5_vl", 4096, 1_605_632),  # 2048 × 784
        ("qwen2_5_vl", 2049, 802_816),  # half rounded down to whole tokens
        ("qwen3_vl", 2048, 1_048_576),  # 1024 tokens × 32²
        ("qwen3_vl_moe", 8192, 4_194_304),  # 4096 × 1024
        ("qwen2_5_vl", 16, 6_272),  # 8 tokens, still above the 4-token floor (3136)
        ("llava", 2048, None),  # no rule: ms-swift's own default applies
    ],
)
def test_default_max_pixels_gives_an_image_half_of_max_length(
    model_type: str, max_length: int, expected: int | None
) -> None:
    assert default_max_pixels(model_type, max_length) == expected


def test_default_max_pixels_keeps_the_processor_floor() -> None:
    # 32 tokens (32768 px) would be below a 65536-px floor: the floor wins, in whole tokens.
    assert default_max_pixels("qwen3_vl", 64, min_pixels=65_536) == 65_536
    assert default_max_pixels("qwen2_5_vl", 64, min_pixels=40_000) == 52 * 784  # 51.02 tokens rounded up to 52
    assert pixel_rule("qwen2_5_vl") == PixelRule(28, 3136) and pixel_rule("qwen3_vl") == PixelRule(32, 4096)


def test_a_given_max_pixels_is_used_as_given_and_a_derived_one_says_why() -> None:
    derived = choose_pixel_budget(None, "qwen2_5_vl", 2048)
    assert (derived.max_pixels, derived.source) == (802_816, "derived")
    assert derived.describe() == "max_pixels 802816 (chosen from max_length 2048: an image ≤ ~1024 tokens)"
    given = choose_pixel_budget(16_000_000, "qwen2_5_vl", 2048)
    assert (given.max_pixels, given.source, given.describe()) == (16_000_000, "given", "max_pixels 16000000 (given)")
    unknown = choose_pixel_budget(None, "llava", 2048)
    assert unknown.max_pixels is None and "ms-swift's default" in unknown.describe()


def test_image_tokens_at_most_bounds_ms_swift_resizing() -> None:
    rule = PixelRule(28, 3136)
    # 4000×3000 scaled to ≤ 802816 px is 1034×775; rounding each side to 28 px gives 37×28 = 1036 tokens.
    assert image_tokens_at_most(4000, 3000, 802_816, rule) == 37 * 28
    assert image_tokens_at_most(56, 56, 802_816, rule) == 9  # small images are not scaled; at most 3×3
    assert image_tokens_at_most(10, 10, 802_816, rule) == 4  # never below the 4-token floor


def test_fitting_max_pixels_is_the_largest_budget_under_which_the_images_fit() -> None:
    rule = PixelRule(28, 3136)
    value = fitting_max_pixels([(4000, 3000)], 1000, rule)
    # 969 × 784 = 759,696 px: 1006×754 -> at most 36×27 = 972 tokens; at 970 × 784, 1006×755 -> 36×28 = 1008.
    assert value == 969 * 784
    assert image_tokens_at_most(4000, 3000, value, rule) <= 1000 < image_tokens_at_most(4000, 3000, value + 784, rule)
    assert fitting_max_pixels([(4000, 3000), (4000, 3000)], 1000, rule) == fitting_max_pixels([(4000, 3000)], 500, rule)
    assert fitting_max_pixels([(4000, 3000)], 3, rule) is None  # less than the 4-token floor
    assert fitting_max_pixels([], 1000, rule) is None


def test_max_pixels_is_derived_for_the_cli_and_the_deployments_alike() -> None:
    import yaml

    assert parse("--dataset", "d.jsonl", "--model_id_or_path", "m").max_pixels is None
    assert parse("--dataset", "d.jsonl", "--model_id_or_path", "m", "--max-pixels", "602112").max_pixels == 602112
    student = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text(encoding="utf-8"))["definitions"][
        "student"
    ]
    assert "max_pixels" not in student  # the form's empty field: derived, as on the command line
    assert TrainParams(dataset=["d"], **student).max_pixels is None
    assert "max_pixels" in TrainParams.model_json_schema()["properties"]  # still in the form
