"""Typed parameters of an evaluation: one model for ``vqa-distill eval``, the ``evaluate`` deployment's form and tests.

The judge is an OpenAI-compatible endpoint like the teacher (its key from OPENAI_API_KEY or a Secret
block, never a parameter); by default it is the model that wrote the dataset, read from the run
folder's ``dataset_stats.json``. The student answers locally through ms-swift, or ``answers_file``
gives its answers (any tool's, one ``{"model", "index", "response"}`` line per case), and no model runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LIMIT = 200  # cases judged at most: 200 pairs x 2 orders x 2 opponents + rubrics stays a few dollars
DEFAULT_JUDGE_RPM = 500
DEFAULT_JUDGE_TPM = 200_000
InferBackend = Literal["transformers", "vllm"]


class EvalParams(BaseModel):
    """Everything an evaluation needs except the judge's key; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="Rows to judge: a run's val.jsonl, or any ms-swift messages jsonl.")
    checkpoint: str | None = Field(
        default=None,
        description="The student: an adapter (checkpoint-N), a merged or fully tuned model directory.",
    )
    answers_file: str | None = Field(
        default=None,
        description='Answers to judge instead of running a model: jsonl lines {"model": "student"|"base", '
        '"index": row, "response": text}.',
    )
    base_model: str | None = Field(
        default=None,
        description="The base model to compare with; default: the one the checkpoint was trained from.",
    )
    compare_base: bool = Field(
        default=True, description="Also answer with the base model and judge the student against it."
    )
    out: str | None = Field(
        default=None,
        description="Report folder; default: eval-judged beside the checkpoint (or the dataset).",
    )
    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, description="Judge at most this many rows, in file order."
    )
    judge_model: str | None = Field(
        default=None,
        description="Judge model; default: the teacher model that wrote the dataset (gpt-4o-mini when unknown).",
    )
    base_url: str | None = Field(
        default=None, description="Judge endpoint (OpenAI-compatible); default: the teacher's."
    )
    api_key_block: str | None = Field(
        default=None, description="Prefect Secret block with the judge's key (else OPENAI_API_KEY)."
    )
    rpm: int = Field(default=DEFAULT_JUDGE_RPM, ge=1, description="Judge requests per minute allowed.")
    tpm: int = Field(default=DEFAULT_JUDGE_TPM, ge=100, description="Judge tokens per minute allowed.")
    concurrency: int = Field(default=16, ge=1, le=1024, description="Judge requests in flight at most.")
    batch: bool = Field(
        default=False,
        description="Send the judge's calls through the Batch API (half the price; the evaluation waits for them).",
    )
    batch_wait_minutes: float = Field(
        default=60.0, ge=0, description="With batch: how long to wait for the batches; rerun the evaluation to collect later."
    )
    rubric: bool = Field(
        default=True, description="Also score each answer 1-5 with the rubric (one more call per answer)."
    )
    infer_backend: InferBackend = Field(
        default="transformers",
        description="ms-swift inference engine: transformers (CPU or GPU) or vllm (GPU).",
    )
    max_new_tokens: int = Field(default=256, ge=1, description="Longest answer the local models may write.")
    max_batch_size: int = Field(
        default=8, ge=1, description="Rows answered in one batch (transformers backend)."
    )
    max_pixels: int | None = Field(
        default=None,
        ge=784,
        description="Image budget for the local models; default: the training run's (args.json).",
    )
    cuda_devices: str | None = Field(
        default=None, description="GPUs to answer on (e.g. 0); 'cpu' for the CPU."
    )
    torch_dtype: str | None = Field(
        default=None, description="bfloat16, float16 or float32; default: the device's best."
    )
