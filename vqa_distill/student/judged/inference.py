"""The local answers of an evaluation: the student (and the base model) through ms-swift, in one child process.

What the checkpoint was trained with comes from its ``args.json`` (ms-swift writes one per run and
per checkpoint): the base model, model type, template, system prompt and, above all, ``max_pixels``:
answering about images resized otherwise than in training degrades a Qwen-VL student.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.student.argv import single_device_env
from vqa_distill.student.child_process import LineSink, run_logged
from vqa_distill.student.device import choose_dtype, probe_device
from vqa_distill.student.infer_worker import InferModel, InferSpec, worker_argv
from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.student.model_resolve import resolve_model

ARGS_FILE = "args.json"
ANSWERS_FILE = "answers.jsonl"


@dataclass(frozen=True)
class TrainedWith:
    """What a checkpoint's args.json says about how it was trained."""

    trained_from: str  # the base model training started from: the default opponent
    student: str  # the model to load: the base for an adapter, the checkpoint itself for a whole model
    model_type: str | None
    template: str | None
    system: str | None
    max_pixels: int | None
    adapter: bool  # True: a LoRA/DoRA adapter on ``model``; False: a whole model

    @classmethod
    def read(cls, checkpoint: Path) -> TrainedWith:
        """Read ``checkpoint``'s args.json (or its run directory's); ConfigError when it is missing or unusable."""
        for folder in (checkpoint, checkpoint.parent):
            path = folder / ARGS_FILE
            if path.is_file():
                try:
                    args: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise ConfigError(f"{path} is not JSON ({exc})") from None
                if not isinstance(args, dict) or not args.get("model"):
                    raise ConfigError(f"{path} names no model: is it ms-swift's args.json of a training run?")
                tuner = args.get("tuner_type") or args.get("train_type") or "lora"
                adapter = tuner != "full" and (checkpoint / "adapter_config.json").is_file()
                return cls(
                    trained_from=str(args.get("model")),
                    student=str(args.get("model")) if adapter else str(checkpoint),
                    model_type=args.get("model_type"),
                    template=args.get("template"),
                    system=args.get("system"),
                    max_pixels=args.get("max_pixels"),
                    adapter=adapter,
                )
        raise ConfigError(
            f"{checkpoint} has no {ARGS_FILE}: pass a checkpoint written by `vqa-distill train`"
        )


def answer_locally(
    cases: Sequence[EvalCase],
    params: EvalParams,
    out: Path,
    trained: TrainedWith,
    *,
    on_line: LineSink | None = None,
    logprobs: bool = False,
) -> dict[str, list[str]]:
    """Answer every case with the student (and the base model); returns model name -> answers in case order.

    With ``logprobs`` each line of ``answers.jsonl`` also holds the answer's mean token log-probability.
    """
    checkpoint = Path(params.checkpoint or "")
    device_ids = [] if params.cuda_devices == "cpu" else (params.cuda_devices or "0").split(",")
    device = probe_device(device_ids)
    if params.infer_backend == "vllm" and (not device.is_cuda or importlib.util.find_spec("vllm") is None):
        raise ConfigError(
            "--infer-backend vllm needs a CUDA GPU and the vllm package; use transformers on the CPU"
        )
    base_name = params.base_model or trained.trained_from
    models: list[InferModel] = []
    if params.compare_base and base_name:
        base = resolve_model(base_name, model_type=trained.model_type, template=trained.template)
        models.append(InferModel("base", base.model, base.model_type, base.template))
    student_base = resolve_model(trained.student, model_type=trained.model_type, template=trained.template)
    adapters = [str(checkpoint)] if trained.adapter else []
    models.append(
        InferModel("student", student_base.model, student_base.model_type, student_base.template, adapters)
    )
    rows_path = out / "rows.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows_path.write_text(
        "".join(
            json.dumps({"messages": c.messages, "images": [c.image]}, ensure_ascii=False) + "\n"
            for c in cases
        ),
        encoding="utf-8",
    )
    spec = InferSpec(
        rows=str(rows_path),
        out=str(out / ANSWERS_FILE),
        models=models,
        torch_dtype=choose_dtype(params.torch_dtype or "auto", device),
        max_new_tokens=params.max_new_tokens,
        max_batch_size=params.max_batch_size,
        max_pixels=params.max_pixels or trained.max_pixels,
        infer_backend=params.infer_backend,
        logprobs=logprobs,
    )
    run_logged(
        worker_argv(spec.dump(out / "infer_spec.json")),
        log_path=out / "infer.log",
        env=single_device_env(device, device_ids),
        on_line=on_line,
        what=f"inference ({params.infer_backend})",
    )
    return read_answers(out / ANSWERS_FILE, len(cases))


def read_answers(path: Path, count: int) -> dict[str, list[str]]:
    """Read ``{"model", "index", "response"}`` lines; FatalRunError when the student did not answer every case."""
    if not path.is_file():
        raise ConfigError(f"no answers file at {path}")
    by_model: dict[str, dict[int, str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            by_model.setdefault(str(record["model"]), {})[int(record["index"])] = str(record["response"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f'{path}:{number}: not a {{"model", "index", "response"}} line ({exc})'
            ) from None
    answers = {}
    for model, by_index in by_model.items():
        missing = [i for i in range(count) if i not in by_index]
        if missing:
            raise FatalRunError(
                f"{path}: {model} answered {count - len(missing)} of {count} rows (missing row {missing[0]})"
            )
        answers[model] = [by_index[i] for i in range(count)]
    if "student" not in answers:
        raise ConfigError(f'{path} holds no student answers (lines with "model": "student")')
    return answers
