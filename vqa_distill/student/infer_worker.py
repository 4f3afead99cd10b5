"""Answer evaluation rows with ms-swift's TransformersEngine, one model after another, in a child process.

Run as ``python -m vqa_distill.student.infer_worker SPEC.json``. One process for the base model and
the student keeps the import cost (seconds) paid once, and its exit frees the GPU memory, as for
training. The spec is written by ``training.evaluate`` and ``judged.inference``; see ``InferSpec``.
``infer_backend`` picks ms-swift's engine: ``transformers`` anywhere, ``vllm`` on a CUDA GPU with
vLLM installed (one adapter at most, as ms-swift's VllmEngine takes); both answer the whole batch
of rows in one ``infer`` call, greedily.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class InferModel:
    """One model to answer with: a base model, optionally with LoRA/DoRA adapters on top."""

    name: str
    model: str
    model_type: str
    template: str
    adapters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InferSpec:
    """What the worker reads: rows to answer, the models, generation limits, where to write."""

    rows: str
    out: str
    models: list[InferModel]
    torch_dtype: str
    max_new_tokens: int
    max_batch_size: int = 4
    max_pixels: int | None = None  # the training run's budget: answer about images seen as in training
    infer_backend: str = "transformers"  # or "vllm"
    logprobs: bool = False  # also write each answer's mean token log-probability (the student's confidence)

    def dump(self, path: Path) -> Path:
        """Write the spec as JSON for the worker's command line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> InferSpec:
        """Read a spec written by ``dump``."""
        data = json.loads(path.read_text(encoding="utf-8"))
        data["models"] = [InferModel(**m) for m in data["models"]]
        return cls(**data)


def worker_argv(spec_path: Path) -> list[str]:
    """The command that runs this module on ``spec_path``."""
    return [sys.executable, "-m", "vqa_distill.student.infer_worker", str(spec_path)]


def run(spec: InferSpec) -> None:
    """Answer every row with every model; appends ``{"model", "index", "response"}`` lines to ``spec.out``."""
    import torch
    from swift import InferRequest, RequestConfig

    rows = [
        json.loads(line) for line in Path(spec.rows).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    requests = [InferRequest(messages=row["messages"], images=row["images"]) for row in rows]
    config = RequestConfig(max_tokens=spec.max_new_tokens, temperature=0.0, logprobs=spec.logprobs)
    out = Path(spec.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for entry in spec.models:
            engine = _engine(entry, spec, getattr(torch, spec.torch_dtype))
            if spec.max_pixels is not None:
                engine.template.max_pixels = spec.max_pixels
            responses: list[Any] = engine.infer(requests, config, use_tqdm=False)
            for index, response in enumerate(responses):
                choice = response.choices[0]
                line: dict[str, Any] = {"model": entry.name, "index": index, "response": choice.message.content or ""}
                if spec.logprobs:
                    line["logprob"] = mean_logprob(choice.logprobs)
                handle.write(json.dumps(line) + "\n")
            handle.flush()
            print(f"infer_worker: {entry.name} answered {len(responses)} row(s)", flush=True)
            del engine
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def mean_logprob(logprobs: Any) -> float | None:
    """The mean log-probability of an answer's tokens (None without any): lower means less sure."""
    content = (logprobs or {}).get("content") or []
    values = [float(token["logprob"]) for token in content if token.get("logprob") is not None]
    return sum(values) / len(values) if values else None


def _engine(entry: InferModel, spec: InferSpec, torch_dtype: Any) -> Any:
    """ms-swift's engine for one model: TransformersEngine (batched), or VllmEngine with LoRA enabled for an adapter."""
    common = {"adapters": entry.adapters or None, "model_type": entry.model_type, "template_type": entry.template,
              "torch_dtype": torch_dtype}  # fmt: skip
    if spec.infer_backend == "vllm":
        from swift import VllmEngine

        return VllmEngine(entry.model, **common, limit_mm_per_prompt={"image": 1}, max_lora_rank=64)
    from swift import TransformersEngine

    return TransformersEngine(entry.model, **common, max_batch_size=spec.max_batch_size)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the spec path."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vqa_distill.student.infer_worker SPEC.json", file=sys.stderr)
        return 2
    run(InferSpec.load(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
