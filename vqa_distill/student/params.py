"""The training stage's parameters: one typed model shared by the CLI, the Prefect flow form and ms-swift's argv.

Field names and defaults are the original ``train.py``'s (``--cuda_devices 0``, ``--system "You are a
helpful assistant."``, ``--output_dir checkpoint``, ...) because those are what its users know; the
fields after them are this project's additions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Tuner = Literal["lora", "qlora", "dora", "full"]
TorchDtype = Literal["auto", "bfloat16", "float16", "float32"]

DEFAULT_SYSTEM = "You are a helpful assistant."


class TrainParams(BaseModel):
    """Everything one training run needs; Prefect renders it as the ``train`` flow's form."""

    model_config = ConfigDict(extra="forbid")

    # --- the original train.py's flags, names and defaults kept ---
    dataset: list[str] = Field(
        min_length=1,
        description="Training JSONL file(s) in ms-swift's messages format (the teacher stage's train.jsonl).",
    )
    model_id_or_path: str = Field(
        description="Student model: a local directory (its config.json decides the type) or a hub id such as "
        "Qwen/Qwen2.5-VL-3B-Instruct. Qwen2-VL, Qwen2.5-VL and Qwen3-VL are supported.",
    )
    cuda_devices: str = Field(
        default="0",
        description="CUDA_VISIBLE_DEVICES for training, e.g. '0' or '0,1' (several GPUs use ms-swift's torchrun "
        "launcher); 'cpu' or '' trains on the CPU.",
    )
    system: str = Field(default=DEFAULT_SYSTEM, description="System prompt for rows that carry none.")
    output_dir: str = Field(
        default="checkpoint", description="Where ms-swift writes its versioned run directory (vN-timestamp)."
    )
    data_seed: int = Field(default=42, description="Seed of the train/validation split.")
    max_length: int = Field(
        default=2048,
        ge=16,
        description="Token limit per row, images included; longer rows are refused by the preflight.",
    )
    split_dataset_ratio: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="Share of the training rows held out for validation when no val_dataset is given.",
    )
    num_proc: int = Field(default=4, ge=1, description="Processes ms-swift uses to preprocess the dataset.")
    model_name: list[str] = Field(
        default_factory=lambda: ["小黄", "Xiao Huang"],
        min_length=1,
        max_length=2,
        description="Chinese and English model name; only used by the self-cognition rows (see self_cognition).",
    )
    model_author: list[str] = Field(
        default_factory=lambda: ["魔搭", "ModelScope"],
        min_length=1,
        max_length=2,
        description="Chinese and English author; only used by the self-cognition rows (see self_cognition).",
    )
    lora_rank: int = Field(default=8, ge=1, description="LoRA rank (lora, qlora, dora).")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA alpha (lora, qlora, dora).")
    learning_rate: float = Field(
        default=1e-4, gt=0.0, description="Peak learning rate (1e-5 is usual for full)."
    )
    per_device_train_batch_size: int = Field(
        default=1, ge=1, description="Training rows per device per step."
    )
    per_device_eval_batch_size: int = Field(
        default=1, ge=1, description="Validation rows per device per step."
    )
    gradient_accumulation_steps: int = Field(
        default=16, ge=1, description="Micro-batches per optimizer step."
    )
    num_train_epochs: float = Field(default=5.0, gt=0.0, description="Passes over the training rows.")

    # --- this project's additions ---
    val_dataset: list[str] = Field(
        default_factory=list,
        description="Validation JSONL file(s); when given, no split is taken from dataset.",
    )
    tuner: Tuner = Field(
        default="lora",
        description="lora (default), qlora (4-bit base, needs CUDA and bitsandbytes), dora, or full fine-tuning.",
    )
    self_cognition: int = Field(
        default=0,
        ge=0,
        description="Mix in N rows of ms-swift's swift/self-cognition dataset (downloaded from the hub), whose "
        "{{NAME}}/{{AUTHOR}} become model_name/model_author. 0: none, and model_name/model_author do nothing.",
    )
    max_pixels: int | None = Field(
        default=None,
        ge=784,
        description="Downscale images above this many pixels (H*W) before encoding. Empty: chosen from max_length "
        "so that one image takes at most about half of it (max_length 2048: 802816 for Qwen2/2.5-VL, 1048576 "
        "for Qwen3-VL). Raise max_length with it for bigger images.",
    )
    resume_from_checkpoint: str | None = Field(
        default=None,
        description="A checkpoint-N directory of an earlier run: continue it, optimizer state included.",
    )
    merge: bool = Field(
        default=False, description="After training, also write a merged model (ms-swift export)."
    )
    merge_check_rows: int = Field(
        default=3,
        ge=0,
        description="After merge, answer this many validation rows greedily with the adapter and with the merged "
        "model and warn when their answers differ; 0 turns the check off.",
    )
    skip_bad_rows: bool = Field(
        default=False,
        description="Drop rows that fail the preflight (counted and reported) instead of refusing to train.",
    )
    max_drop_share: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Refuse to train when more than this share (0..1) of the rows would be lost to ms-swift "
        "(longer than max_length, or malformed), even with skip_bad_rows; below it skip_bad_rows drops them.",
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    logging_steps: int = Field(default=5, ge=1, description="Log loss every N optimizer steps.")
    save_steps: int | None = Field(
        default=None, ge=1, description="Save a checkpoint every N steps (ms-swift's default: 500)."
    )
    torch_dtype: TorchDtype = Field(
        default="auto",
        description="auto: bfloat16 on a GPU that supports it, else float16; float32 on the CPU.",
    )
    model_type: str | None = Field(
        default=None, description="Override the ms-swift model_type resolved from the model."
    )
    template: str | None = Field(
        default=None,
        description="Override the ms-swift template (e.g. qvq, mimo_vl) resolved from the model.",
    )
    eval_limit: int = Field(
        default=100,
        ge=0,
        description="After training, score the student on up to N validation rows; 0 skips evaluation.",
    )
    eval_base: bool = Field(default=True, description="Also score the untrained base model on the same rows.")
    eval_max_new_tokens: int = Field(default=256, ge=1, description="Answer length limit during evaluation.")
    swift_args: list[str] = Field(
        default_factory=list,
        description="Extra flags appended verbatim to `swift sft` (e.g. --deepspeed zero2).",
    )

    @field_validator("dataset", "val_dataset")
    @classmethod
    def _no_empty_paths(cls, paths: list[str]) -> list[str]:
        """Reject empty strings, which ms-swift would read as the current directory."""
        if any(not p.strip() for p in paths):
            raise ValueError("dataset paths must be non-empty")
        return paths

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        """Catch combinations that would fail only after the model has loaded."""
        if self.tuner == "full" and self.merge:
            raise ValueError("--merge applies to adapters; full fine-tuning already writes a whole model")
        if self.tuner == "qlora" and self.uses_cpu:
            raise ValueError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use --tuner lora on the CPU")
        return self

    @property
    def uses_cpu(self) -> bool:
        """True when the user asked for CPU training (``--cuda_devices cpu`` or an empty list)."""
        return self.cuda_devices.strip().lower() in {"", "cpu", "-1"}

    @property
    def device_ids(self) -> list[str]:
        """The requested CUDA device ids, in order; empty for CPU."""
        if self.uses_cpu:
            return []
        return [d.strip() for d in self.cuda_devices.split(",") if d.strip()]
