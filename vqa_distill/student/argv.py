"""Pure functions from TrainParams to the ``swift sft`` / ``swift export`` command lines and environments.

Kept free of I/O so that "which flag reaches ms-swift with which value" is tested by equality. Every
original flag is passed explicitly, defaults included: ms-swift's own defaults differ (no validation
split, ``gradient_accumulation_steps`` silently 16/batch, ``max_length`` from the model), and an
explicit value also lands in ``args.json`` where a reader can check it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vqa_distill.student.device import DeviceInfo, choose_dtype, visible_devices_env
from vqa_distill.student.model_resolve import ResolvedModel
from vqa_distill.student.params import TrainParams

SWIFT_CLI = (sys.executable, "-m", "swift.cli.main")
SELF_COGNITION_DATASET = "swift/self-cognition"


def sft_argv(
    params: TrainParams,
    model: ResolvedModel,
    device: DeviceInfo,
    *,
    dataset: Sequence[str] | None = None,
    val_dataset: Sequence[str] | None = None,
) -> list[str]:
    """The ``swift sft`` command for this run; ``dataset``/``val_dataset`` replace the params' files
    (the preflight passes cleaned copies when it dropped rows)."""
    train_files = list(dataset if dataset is not None else params.dataset)
    val_files = list(val_dataset if val_dataset is not None else params.val_dataset)
    if params.self_cognition:
        train_files.append(f"{SELF_COGNITION_DATASET}#{params.self_cognition}")
    argv = [
        *SWIFT_CLI, "sft",
        "--model", model.model,
        "--model_type", model.model_type,
        "--template", model.template,
        "--dataset", *train_files,
    ]  # fmt: skip
    if val_files:
        argv += ["--val_dataset", *val_files]
    argv += _tuner_flags(params, device)
    argv += [
        "--torch_dtype", choose_dtype(params.torch_dtype, device),
        "--system", params.system,
        "--output_dir", params.output_dir,
        "--data_seed", str(params.data_seed),
        "--max_length", str(params.max_length),
        "--split_dataset_ratio", str(params.split_dataset_ratio),
        "--dataset_num_proc", str(params.num_proc),
        "--model_name", *params.model_name,
        "--model_author", *params.model_author,
        "--learning_rate", str(params.learning_rate),
        "--per_device_train_batch_size", str(params.per_device_train_batch_size),
        "--per_device_eval_batch_size", str(params.per_device_eval_batch_size),
        "--gradient_accumulation_steps", str(params.gradient_accumulation_steps),
        "--num_train_epochs", str(params.num_train_epochs),
        "--logging_steps", str(params.logging_steps),
        # Without this ms-swift asks the hub whether a local model is "valid".
        "--check_model", "false",
    ]  # fmt: skip
    if params.max_steps is not None:
        argv += ["--max_steps", str(params.max_steps)]
    if params.save_steps is not None:
        argv += ["--save_steps", str(params.save_steps), "--eval_steps", str(params.save_steps)]
    if params.max_pixels is not None:
        argv += ["--max_pixels", str(params.max_pixels)]
    if params.resume_from_checkpoint:
        argv += ["--resume_from_checkpoint", params.resume_from_checkpoint]
    if not device.is_cuda:
        # Worker processes only add fork overhead on the CPU, where the model itself is the bottleneck.
        argv += ["--dataloader_num_workers", "0"]
    argv += params.swift_args
    return argv


def _tuner_flags(params: TrainParams, device: DeviceInfo) -> list[str]:
    """ms-swift spells QLoRA and DoRA as LoRA plus options."""
    if params.tuner == "full":
        return ["--tuner_type", "full"]
    flags = ["--tuner_type", "lora", "--lora_rank", str(params.lora_rank), "--lora_alpha", str(params.lora_alpha)]
    if params.tuner == "dora":
        flags += ["--use_dora", "true"]
    if params.tuner == "qlora":
        compute = "bfloat16" if device.bf16 else "float16"
        flags += [
            "--quant_method", "bnb",
            "--quant_bits", "4",
            "--bnb_4bit_quant_type", "nf4",
            "--bnb_4bit_use_double_quant", "true",
            "--bnb_4bit_compute_dtype", compute,
        ]  # fmt: skip
    return flags


def sft_env(device: DeviceInfo, device_ids: Sequence[str]) -> dict[str, str]:
    """Variables added to the training process's environment.

    Several GPUs: ``NPROC_PER_NODE`` makes ``swift`` start itself under torchrun (data parallel).
    """
    env = visible_devices_env(list(device_ids) if device.is_cuda else [])
    env["PYTHONUNBUFFERED"] = "1"
    if device.count > 1:
        env["NPROC_PER_NODE"] = str(device.count)
    return env


def single_device_env(device: DeviceInfo, device_ids: Sequence[str]) -> dict[str, str]:
    """Environment for merging and evaluation: the first of the training devices, or the CPU."""
    env = visible_devices_env(list(device_ids[:1]) if device.is_cuda else [])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def export_argv(checkpoint: str, output_dir: str) -> list[str]:
    """The ``swift export`` command that merges a LoRA/DoRA checkpoint into its base model."""
    return [*SWIFT_CLI, "export", "--adapters", checkpoint, "--merge_lora", "true", "--output_dir", output_dir]
