"""Does orchestration slow training? The same tiny training through the ``train`` flow and through plain
``swift sft``, alternated in one run; prints samples/s of each and their ratio (target: >= 0.97).

Samples/s is ms-swift's own ``train_samples_per_second`` (the training loop only), so the ratio shows
whether running under the flow (a Prefect task, output teed through a pipe) slows the loop itself.
The wall-clock column also counts what each adds around it (the flow: device probe, preflight).

    .venv/bin/python bench/train.py                  # CPU, ~3-4 minutes on 2 cores
    .venv/bin/python bench/train.py --cuda-devices 0 --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGET_RATIO = 0.97


def make_dataset(folder: Path, rows: int) -> Path:
    """Solid-colour PNGs with a question and an answer each, in ms-swift's messages format."""
    from PIL import Image

    from vqa_distill.dataset.rows import dumps_row, make_row

    colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
    names = list(colours)
    lines = []
    for index in range(rows):
        name = names[index % len(names)]
        path = folder / "images" / f"tile_{index:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (56, 56), colours[name]).save(path)
        lines.append(dumps_row(make_row(image_path=str(path), prompt="What colour is it?", answer=f"It is {name}.")))
    dataset = folder / "train.jsonl"
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dataset


def swift_command() -> list[str]:
    """The ``swift`` console script beside this interpreter (what a user types), else ``python -m``."""
    script = Path(sys.executable).with_name("swift")
    return [str(script)] if script.exists() else [sys.executable, "-m", "swift.cli.main"]


def run_plain(params: object, output_dir: Path) -> tuple[float, float]:
    """``swift sft`` with the exact argv the flow would use; returns (samples/s, wall seconds)."""
    from vqa_distill.student.argv import SWIFT_CLI, sft_argv, sft_env
    from vqa_distill.student.child_process import list_run_dirs, new_run_dir
    from vqa_distill.student.device import probe_device
    from vqa_distill.student.model_resolve import resolve_model
    from vqa_distill.student.results import read_summary

    assert hasattr(params, "model_copy")
    plain = params.model_copy(update={"output_dir": str(output_dir)})
    device = probe_device(plain.device_ids)
    argv = sft_argv(plain, resolve_model(plain.model_id_or_path), device)
    command = swift_command() + argv[len(SWIFT_CLI) :]
    before = list_run_dirs(output_dir)
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, **sft_env(device, plain.device_ids)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    summary = read_summary(new_run_dir(output_dir, before))
    return float(summary.train_samples_per_second or 0.0), wall


def run_flow(params: object, output_dir: Path) -> tuple[float, float]:
    """The ``train`` flow; returns (samples/s, wall seconds)."""
    from flows.train import train
    from vqa_distill.student.results import read_summary

    assert hasattr(params, "model_copy")
    started = time.perf_counter()
    checkpoint = train(params.model_copy(update={"output_dir": str(output_dir)}))
    wall = time.perf_counter() - started
    summary = read_summary(Path(checkpoint).parent)
    return float(summary.train_samples_per_second or 0.0), wall


def start_prefect_server(work: Path) -> object:
    """Start a Prefect server on a free loopback port and point this process at it."""
    from vqa_distill.ops.prefect_server import SERVER_SETTINGS, free_port, start_server

    port = free_port()
    os.environ.update(SERVER_SETTINGS, PREFECT_HOME=str(work / "prefect-home"))
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    return start_server(port, os.environ, work / "logs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternated (default 3)")
    parser.add_argument("--rows", type=int, default=32, help="dataset rows (default 32)")
    parser.add_argument("--cuda-devices", default="cpu", help="'cpu' (default) or CUDA device ids such as 0")
    parser.add_argument("--model", help="model directory (default: build the tiny Qwen2.5-VL)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    # A dedicated Prefect server, started before timing, as on a GPU worker (the server lives elsewhere);
    # without PREFECT_API_URL each flow run would start a temporary one beside the training.

    from vqa_distill.student.params import TrainParams
    from vqa_distill.student.tiny_model import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    server = start_prefect_server(work) if "PREFECT_API_URL" not in os.environ else None
    try:
        model = args.model or str(build_tiny_model(work / "tiny-qwen2.5-vl"))
        params = TrainParams(
            dataset=[str(make_dataset(work, args.rows))],
            model_id_or_path=model,
            cuda_devices=args.cuda_devices,
            max_steps=args.steps,
            gradient_accumulation_steps=1,
            split_dataset_ratio=0.0,
            logging_steps=10,
            num_proc=1,
            eval_limit=0,
            output_dir=str(work / "unused"),
        )
        results: dict[str, list[tuple[float, float]]] = {"swift sft": [], "train flow": []}
        for repeat in range(args.repeats):
            # Alternate, so that a slow spell of a shared machine hits both sides alike.
            results["swift sft"].append(run_plain(params, work / f"plain-{repeat}"))
            results["train flow"].append(run_flow(params, work / f"flow-{repeat}"))
        print(f"\n{args.steps} steps x batch 1, {args.repeats} run(s) each, device: {args.cuda_devices}")
        print(f"{'runner':<12} {'samples/s (median)':>19} {'samples/s (best)':>17} {'wall s (median)':>16}")
        for name, runs in results.items():
            rates = [rate for rate, _ in runs]
            print(f"{name:<12} {median(rates):>19.2f} {max(rates):>17.2f} {median(w for _, w in runs):>16.1f}")
        # Each flow run against the plain run just before it: a shared machine's load drifts between pairs.
        pairs = [f / p for (p, _), (f, _) in zip(results["swift sft"], results["train flow"], strict=True)]
        ratio = median(pairs)
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"ratio flow / plain per pair: {', '.join(f'{r:.3f}' for r in pairs)}")
        print(f"ratio flow / plain (median of pairs): {ratio:.3f}  (target >= {TARGET_RATIO}: {verdict})")
        print(json.dumps({"ratio": round(ratio, 4), "runs": results}))
        return 0 if ratio >= TARGET_RATIO else 1
    finally:
        if server is not None:
            from vqa_distill.supervisor import stop_process

            stop_process(server)  # type: ignore[arg-type]
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
