"""The training stage as plain functions, in the order a run calls them: prepare, train, merge, evaluate.

Each is what one Prefect task does (``tasks/train.py``); without Prefect they run as they are.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.errors import ConfigError, FatalRunError
from vqa_distill.student import argv as swift_argv
from vqa_distill.student.child_process import list_run_dirs, new_run_dir, run_logged
from vqa_distill.student.device import DeviceInfo, choose_dtype, probe_device
from vqa_distill.student.drop_share import DropShare, SwiftDataFlags
from vqa_distill.student.evaluate import (
    EvalReport,
    eval_rows_from_files,
    read_eval_rows,
    read_predictions,
    score,
    write_eval_rows,
)
from vqa_distill.student.infer_worker import InferModel, InferSpec, worker_argv
from vqa_distill.student.merge_check import (
    ADAPTER,
    MERGE_CHECK_DIR,
    MERGED,
    MergeCheck,
    compare,
    merge_check_spec,
    pick_rows,
)
from vqa_distill.student.model_resolve import ResolvedModel, resolve_model
from vqa_distill.student.params import TrainParams
from vqa_distill.student.pixels import PixelBudget, choose_pixel_budget
from vqa_distill.student.preflight import run_preflight
from vqa_distill.student.results import TrainSummary, read_summary
from vqa_distill.student.token_count import load_token_counter

LineSink = Callable[[str], None]
SFT_LOG = "swift-sft.log"
EXPORT_LOG = "swift-export.log"
EVAL_DIR = "eval"
EVAL_ROWS = "rows.jsonl"
EVAL_PREDICTIONS = "predictions.jsonl"


@dataclass(frozen=True)
class Prepared:
    """A run that passed its checks: the resolved model, the device, and the files training reads.

    ``params.max_pixels`` is the budget the rows were checked with (given, or derived from max_length),
    so training and evaluation see images exactly as the preflight did; ``pixels`` says where it came from.
    """

    params: TrainParams
    model: ResolvedModel
    device: DeviceInfo
    dataset: list[str]
    val_dataset: list[str]
    total_rows: int
    dropped_rows: int
    max_tokens: int
    pixels: PixelBudget
    drop_share: DropShare


def prepare(params: TrainParams, *, log: LineSink = print) -> Prepared:
    """Resolve the model, probe the device and check every dataset row; nothing here touches a GPU.

    Raises ModelNotFoundError, ConfigError or DatasetError before any training starts.
    """
    model = resolve_model(params.model_id_or_path, model_type=params.model_type, template=params.template)
    _check_resume(params.resume_from_checkpoint)
    device = probe_device(params.device_ids)
    if params.device_ids and not device.is_cuda:
        log(f"no CUDA device visible for --cuda_devices {params.cuda_devices}: training on the CPU (slowly)")
    if params.tuner == "qlora":
        if not device.is_cuda:
            raise ConfigError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is visible")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("QLoRA needs the bitsandbytes package: pip install bitsandbytes")
    log(
        f"model {model.model} (model_type {model.model_type}, template {model.template}) on {device.describe()}"
    )
    pixels = choose_pixel_budget(
        params.max_pixels, model.model_type, params.max_length, min_pixels=_env_int("MIN_PIXELS")
    )
    log(pixels.describe())
    params = params.model_copy(update={"max_pixels": pixels.max_pixels})
    counter = load_token_counter(model, system=params.system, max_pixels=params.max_pixels)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = run_preflight(
        params.dataset,
        params.val_dataset,
        max_length=params.max_length,
        count_tokens=counter,
        skip_bad_rows=params.skip_bad_rows,
        clean_dir=Path(params.output_dir) / "preflight" / stamp,
        pixels=pixels,
        max_drop_share=params.max_drop_share,
        flags=SwiftDataFlags.from_args(params.swift_args),
    )
    report = result.report
    if result.dropped:
        log(result.share.describe(see=result.issues_file))
        log(report.describe())
        log(f"--skip-bad-rows: dropped {result.dropped} of {report.total_rows} row(s); training on the rest")
    max_tokens = max((f.max_tokens for f in report.files), default=0)
    log(
        f"preflight: {report.total_rows} row(s) checked, longest {max_tokens} tokens (limit {params.max_length})"
    )
    return Prepared(
        params=params,
        model=model,
        device=device,
        dataset=result.dataset,
        val_dataset=result.val_dataset,
        total_rows=report.total_rows,
        dropped_rows=result.dropped,
        max_tokens=max_tokens,
        pixels=pixels,
        drop_share=result.share,
    )


def _env_int(name: str) -> int | None:
    """An integer environment variable (ms-swift reads MIN_PIXELS itself), None when unset or not a number."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _check_resume(checkpoint: str | None) -> None:
    """A resume path must be a checkpoint-N directory that the Trainer can restore."""
    if checkpoint is None:
        return
    path = Path(checkpoint)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(
            f"--resume_from_checkpoint {checkpoint!r} is not a checkpoint (no trainer_state.json)"
        )


def train(prepared: Prepared, *, on_line: LineSink | None = None) -> TrainSummary:
    """Run ``swift sft`` to completion; returns what its ``logging.jsonl`` says, the checkpoint first."""
    params = prepared.params
    output_dir = Path(params.output_dir)
    before = list_run_dirs(output_dir)
    log_path = output_dir / f"{SFT_LOG}.{time.strftime('%Y%m%d-%H%M%S')}"
    command = swift_argv.sft_argv(
        params, prepared.model, prepared.device, dataset=prepared.dataset, val_dataset=prepared.val_dataset
    )
    env = swift_argv.sft_env(prepared.device, params.device_ids)
    run_logged(command, log_path=log_path, env=env, on_line=on_line, what="swift sft")
    run_dir = new_run_dir(output_dir, before)
    shutil.move(log_path, run_dir / SFT_LOG)
    return read_summary(run_dir)


def merge(prepared: Prepared, summary: TrainSummary, *, on_line: LineSink | None = None) -> str:
    """Merge the adapter into its base model with ``swift export``; returns the merged model directory."""
    merged = f"{summary.checkpoint}-merged"
    run_logged(
        swift_argv.export_argv(summary.checkpoint, merged),
        log_path=Path(summary.run_dir) / EXPORT_LOG,
        env=swift_argv.single_device_env(prepared.device, prepared.params.device_ids),
        on_line=on_line,
        what="swift export",
    )
    return merged


def evaluate(
    prepared: Prepared, summary: TrainSummary, *, on_line: LineSink | None = None
) -> EvalReport | None:
    """Answer up to ``eval_limit`` validation rows with the student (and the base model) and score them.

    The rows are ``--val_dataset``, else the split ms-swift held out (its ``val_dataset.jsonl``).
    Returns None when evaluation is off or there are no validation rows.
    """
    params = prepared.params
    run_dir = Path(summary.run_dir)
    files = _val_files(prepared, run_dir)
    if params.eval_limit == 0 or not files:
        return None
    rows = eval_rows_from_files(files, system=params.system, limit=params.eval_limit)
    if not rows:
        return None
    eval_dir = run_dir / EVAL_DIR
    rows_path = write_eval_rows(rows, eval_dir / EVAL_ROWS)
    spec = InferSpec(
        rows=str(rows_path),
        out=str(eval_dir / EVAL_PREDICTIONS),
        models=_eval_models(prepared.model, summary.checkpoint, params.tuner, with_base=params.eval_base),
        torch_dtype=choose_dtype(params.torch_dtype, prepared.device),
        max_new_tokens=params.eval_max_new_tokens,
        max_pixels=params.max_pixels,
    )
    answers = answer_in_worker(spec, eval_dir, prepared, on_line=on_line, what="evaluation inference")
    if len(answers.get("student", [])) != len(rows):
        raise FatalRunError(f"evaluation answered {len(answers.get('student', []))} of {len(rows)} rows")
    return score(rows, answers["student"], answers.get("base"))


def answer_in_worker(
    spec: InferSpec, folder: Path, prepared: Prepared, *, on_line: LineSink | None, what: str
) -> dict[str, list[str]]:
    """Run the inference worker on ``spec`` (its spec and log in ``folder``, one device); model -> answers."""
    run_logged(
        worker_argv(spec.dump(folder / "spec.json")),
        log_path=folder / "infer.log",
        env=swift_argv.single_device_env(prepared.device, prepared.params.device_ids),
        on_line=on_line,
        what=what,
    )
    return read_predictions(Path(spec.out))


def check_merge(
    prepared: Prepared, summary: TrainSummary, merged: str, *, on_line: LineSink | None = None
) -> MergeCheck | None:
    """Answer ``merge_check_rows`` validation rows (else training rows) greedily with base + adapter and
    with the merged model, in one worker process, and compare; None when the check is off or has no rows."""
    params = prepared.params
    run_dir = Path(summary.run_dir)
    files = _val_files(prepared, run_dir) or [Path(p) for p in prepared.dataset]
    rows = pick_rows(files, system=params.system, limit=params.merge_check_rows)
    if params.tuner == "full" or not rows:
        return None  # full fine-tuning merges nothing
    check_dir = run_dir / MERGE_CHECK_DIR
    spec = merge_check_spec(
        write_eval_rows(rows, check_dir / EVAL_ROWS),
        check_dir / EVAL_PREDICTIONS,
        base=prepared.model,
        checkpoint=summary.checkpoint,
        merged=merged,
        torch_dtype=choose_dtype(params.torch_dtype, prepared.device),
        max_new_tokens=params.eval_max_new_tokens,
        max_pixels=params.max_pixels,
    )
    answers = answer_in_worker(spec, check_dir, prepared, on_line=on_line, what="merge check inference")
    adapter, merged_answers = answers.get(ADAPTER, []), answers.get(MERGED, [])
    if len(adapter) != len(rows) or len(merged_answers) != len(rows):
        raise FatalRunError(
            f"merge check answered {len(adapter)} and {len(merged_answers)} of {len(rows)} rows"
        )
    return compare(rows, adapter, merged_answers)


def _val_files(prepared: Prepared, run_dir: Path) -> list[Path]:
    """The validation rows: ``--val_dataset``, else the split ms-swift held out (its ``val_dataset.jsonl``)."""
    split = run_dir / "val_dataset.jsonl"
    return [Path(p) for p in prepared.val_dataset] or ([split] if split.is_file() else [])


def read_evaluation(run_dir: str | Path) -> EvalReport | None:
    """Score again what ``evaluate`` left in ``run_dir``: the same report, from its files; None without them.

    For readers that only know the checkpoint, such as the demo's closing summary.
    """
    eval_dir = Path(run_dir) / EVAL_DIR
    rows_path, predictions_path = eval_dir / EVAL_ROWS, eval_dir / EVAL_PREDICTIONS
    if not rows_path.is_file() or not predictions_path.is_file():
        return None
    rows = read_eval_rows(rows_path)
    answers = read_predictions(predictions_path)
    if len(answers.get("student", [])) != len(rows):
        return None
    return score(rows, answers["student"], answers.get("base"))


def _eval_models(base: ResolvedModel, checkpoint: str, tuner: str, *, with_base: bool) -> list[InferModel]:
    """Base model first (when asked), then the student: base + adapter, or the full checkpoint."""
    models = []
    if with_base:
        models.append(InferModel("base", base.model, base.model_type, base.template))
    if tuner == "full":
        models.append(InferModel("student", checkpoint, base.model_type, base.template))
    else:
        models.append(InferModel("student", base.model, base.model_type, base.template, [checkpoint]))
    return models
