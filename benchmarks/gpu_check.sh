#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H200 (a machine lent for ~15 minutes now and then):
#   (a) the CUDA-only tests (pytest -k cuda; they skip without CUDA),
#   (b) the whole-evaluation benchmark, VGG-16-BN at 224 px, data batch 128, in 32-true,
#       bf16-mixed and bf16-true (and the batch-128 memory projection beside the measurement),
#       and once more in 32-true with the faithfulness curves (--curves),
#   (c) train.py fit for a few steps and evaluate.py on a CUB-sized synthetic set (224 px,
#       200 classes, VGG-16-BN, no pretrained weights, data batch 128, 2 test batches,
#       threshold null so every image runs the whole protocol),
#   (d) one table: images/s per part, efficiency, peak GPU memory, projected CUB test-split time.
#
# Usage:  benchmarks/gpu_check.sh [--cpu-smoke] [--out DIR]
#   --cpu-smoke  the same steps with tiny sizes on the CPU (tiny_vgg, 32 px, seconds), so that
#                the script is known to work the day a GPU is there (a slow test runs it).
#   --out DIR    where logs, JSON and the run folders go (default outputs/gpu_check).
# Environment: PYTHON (default .venv/bin/python, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
OUT=outputs/gpu_check
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) SMOKE=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--cpu-smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$OUT" && mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ "$SMOKE" = 1 ]; then
  ACC=cpu; BACKBONE=tiny_vgg; SIZE=32; CLASSES=10; BATCH=8; NTRAIN=32; NTEST=16; STEPS=2
  BENCH=(--quick --images 2 --batch 2 --repeats 1); PROJECT=(); LIMIT=(timeout 300)
else
  if ! command -v nvidia-smi >/dev/null || ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA device here; use --cpu-smoke on a CPU" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  ACC=gpu; BACKBONE=vgg16_bn; SIZE=224; CLASSES=200; BATCH=128; NTRAIN=640; NTEST=256; STEPS=5
  BENCH=(); PROJECT=(--project-memory 128); LIMIT=(timeout 170)
fi
TEST_BATCHES=2
START=$(date +%s)
FAILED=()

run_step() {  # run_step NAME CMD...: log to $OUT/NAME.log (and the console), remember failures
  local name=$1; shift
  echo "== $name ($(( $(date +%s) - START )) s): $*"
  if ! "$@" 2>&1 | tee "$OUT/$name.log"; then
    FAILED+=("$name")
    echo "!! $name failed (log: $OUT/$name.log)"
  fi
}

# (a) CUDA-only tests
run_step a_cuda_tests timeout 150 "$PY" -m pytest tests -q -k cuda -p no:cacheprovider

# (b) the whole evaluation in three precisions
for precision in 32-true bf16-mixed bf16-true; do
  extra=()
  [ "$precision" = 32-true ] && extra=("${PROJECT[@]}")
  run_step "b_bench_$precision" "${LIMIT[@]}" "$PY" -m benchmarks.whole_evaluation \
    "${BENCH[@]}" --precision "$precision" --json "$OUT/bench_$precision.json" "${extra[@]}"
done

# (b2) the same in 32-true with the faithfulness curves (their defaults) beside the protocol
run_step b_bench_curves "${LIMIT[@]}" "$PY" -m benchmarks.whole_evaluation "${BENCH[@]}" \
  --curves --json "$OUT/bench_32-true_curves.json"

# (c) train.py fit a few steps, evaluate.py on capped test batches (flags that exist today)
COMMON=(--config configs/synthetic.yaml --model.backbone "$BACKBONE" --model.pretrained null
  --data.init_args.num_classes "$CLASSES" --data.init_args.image_size "$SIZE"
  --data.init_args.batch_size "$BATCH" --data.init_args.num_train "$NTRAIN"
  --data.init_args.num_test "$NTEST" --data.init_args.num_workers 2
  --trainer.accelerator "$ACC" --trainer.devices 1 --trainer.default_root_dir "$OUT/cub_synth"
  --trainer.enable_progress_bar false)
POLL_PID=""
if [ "$SMOKE" = 0 ]; then  # peak GPU memory of both processes, as the driver sees it
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu_mem.log" &
  POLL_PID=$!
fi
t0=$(date +%s.%N)
run_step c_fit timeout 180 "$PY" train.py fit "${COMMON[@]}" --trainer.max_steps "$STEPS" \
  --trainer.limit_val_batches 1
t1=$(date +%s.%N)
CKPT=$(find "$OUT/cub_synth" -name last.ckpt | head -n 1)
if [ -z "$CKPT" ]; then
  FAILED+=("c_checkpoint")
  echo "!! no last.ckpt under $OUT/cub_synth"
fi
run_step c_evaluate timeout 240 "$PY" evaluate.py "${COMMON[@]}" --ckpt_path "${CKPT:-missing}" \
  --evaluation.output_dir "$OUT/cub_eval" --evaluation.threshold null \
  --evaluation.num_figures 2 --trainer.limit_test_batches "$TEST_BATCHES"
t2=$(date +%s.%N)
PEAK="-"
if [ -n "$POLL_PID" ]; then
  kill "$POLL_PID" 2>/dev/null
  PEAK=$(sort -n "$OUT/gpu_mem.log" | tail -n 1)
fi
[ -f "$OUT/cub_eval/results.json" ] || { FAILED+=("c_results"); echo "!! no results.json"; }
"$PY" - "$OUT/cli.json" <<EOF
import json, sys
json.dump({"fit_steps": $STEPS, "batch": $BATCH, "size": $SIZE, "classes": $CLASSES,
           "fit_s": $t1 - $t0, "eval_s": $t2 - $t1,
           "eval_images": min($NTEST, $TEST_BATCHES * $BATCH), "peak_gpu_mib": "$PEAK"},
          open(sys.argv[1], "w"))
EOF

# (d) the table
run_step d_table "$PY" -m benchmarks.gpu_report "$OUT"
echo "gpu_check: $(( $(date +%s) - START )) s in all; logs and JSON in $OUT"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${FAILED[*]}"
  exit 1
fi
echo "gpu_check: all steps passed"
