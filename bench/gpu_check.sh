#!/usr/bin/env bash
# GPU check of the student stage, for a CUDA machine: build the tiny Qwen2.5-VL, train it through the
# `train` flow on the GPU (torch_dtype auto: bf16 where the GPU supports it), evaluate it, and print
# samples/s, peak GPU memory and the adapter path. Exits non-zero when training did not run on CUDA.
#
#   bench/gpu_check.sh                      # GPU 0, 100 steps
#   CUDA_DEVICES=1 STEPS=300 bench/gpu_check.sh
#   PYTHON=/path/to/python bench/gpu_check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
CUDA_DEVICES=${CUDA_DEVICES:-0}
STEPS=${STEPS:-100}
WORK=${WORK:-$(mktemp -d -t vqa-gpu-check-XXXXXX)}
mkdir -p "$WORK"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME=${PREFECT_HOME:-$WORK/prefect-home}

echo "== device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
fi
CUDA_VISIBLE_DEVICES=$CUDA_DEVICES "$PYTHON" -c '
import sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible: this check needs a GPU")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"bf16 supported: {torch.cuda.is_bf16_supported()}")
'

echo "== tiny model and dataset in $WORK"
"$PYTHON" -m vqa_distill.cli tiny-model --out "$WORK/tiny-qwen2.5-vl"
"$PYTHON" - "$WORK" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "bench")
from train import make_dataset  # noqa: E402  (bench/train.py)

work = Path(sys.argv[1])
make_dataset(work / "train", 64)
make_dataset(work / "val", 4)
EOF

echo "== training through the flow ($STEPS steps, cuda_devices $CUDA_DEVICES)"
set +e
"$PYTHON" -m vqa_distill.cli train \
  --dataset "$WORK/train/train.jsonl" --val_dataset "$WORK/val/train.jsonl" \
  --model_id_or_path "$WORK/tiny-qwen2.5-vl" --output_dir "$WORK/checkpoints" \
  --cuda_devices "$CUDA_DEVICES" --max_steps "$STEPS" --gradient_accumulation_steps 1 \
  --logging_steps 10 --eval_limit 4 --eval_max_new_tokens 16 >"$WORK/train.out" 2>"$WORK/train.log"
status=$?
set -e
if [ $status -ne 0 ]; then
  tail -n 60 "$WORK/train.log" "$WORK/train.out"
  echo "training failed (exit $status); full log: $WORK/train.log" >&2
  exit $status
fi
CHECKPOINT=$(tail -n 1 "$WORK/train.out")  # the CLI prints the checkpoint path last on stdout

echo "== result"
"$PYTHON" - "$CHECKPOINT" <<'EOF'
import json
import sys
from pathlib import Path

from vqa_distill.student.results import read_summary

checkpoint = Path(sys.argv[1])
run_dir = checkpoint.parent
summary = read_summary(run_dir)
args = json.loads((run_dir / "args.json").read_text(encoding="utf-8"))
print(f"adapter:            {checkpoint}  (adapter_model.safetensors: {(checkpoint / 'adapter_model.safetensors').is_file()})")
print(f"torch_dtype:        {args['torch_dtype']}")
print(f"steps:              {summary.global_step}")
print(f"train samples/s:    {summary.train_samples_per_second}")
print(f"train runtime s:    {summary.train_runtime_s}")
print(f"peak GPU memory:    {summary.peak_memory_gib} GiB (max reserved by torch in the training process)")
print(f"loss curve:         {run_dir / 'loss.png'}")
if not summary.peak_memory_gib:
    sys.exit("no GPU memory was used: training did not run on CUDA")
if args["torch_dtype"] not in ("bfloat16", "float16"):
    sys.exit(f"expected a half-precision dtype on the GPU, got {args['torch_dtype']}")
EOF
echo "work directory: $WORK"
