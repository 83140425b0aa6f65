#!/usr/bin/env bash
# Everything this project measures on a GPU, in one prepared run (`make gpu`), each part with its own
# time budget that ends it cleanly and still writes what it measured:
#   part 2  pruning time at LLaMA-7B scale, Wanda vs SparseGPT   -> $RESULTS_ROOT/pruning_time/
#   part 3  2:4 speed-up: LLaMA 7B-65B linear shapes, 7B stack    -> $RESULTS_ROOT/speedup/
#   part 4  a LLaMA-30B shape pruned with block offload, 24 GiB cap -> $RESULTS_ROOT/offload/
# Needs only torch, transformers, accelerate, numpy, pandas and this checkout (no virtualenv, no
# network): PYTHONPATH is set to the checkout. Written for one H200 session of at most 9 minutes:
#   RESULTS_ROOT=$OUT/results bash benchmarks/gpu_all.sh      # then copy results/ back and commit
# Rehearsal on any CPU, tiny shapes, every code path, about half a minute:
#   GPU_REHEARSAL=1 bash benchmarks/gpu_all.sh                # writes to /tmp/wanda_gpu_rehearsal
# Budgets (seconds) can be changed: P2_BUDGET, P3_BUDGET, P4_BUDGET; GRACE is added for the hard stop.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
REHEARSE="${GPU_REHEARSAL:-0}"
if [ "$REHEARSE" = 1 ]; then
  ROOT="${RESULTS_ROOT:-/tmp/wanda_gpu_rehearsal}"; FLAG="--rehearse"
  P2="${P2_BUDGET:-60}"; P3="${P3_BUDGET:-60}"; P4="${P4_BUDGET:-60}"; GRACE="${GRACE:-60}"
else
  ROOT="${RESULTS_ROOT:-results}"; FLAG=""
  P2="${P2_BUDGET:-150}"; P3="${P3_BUDGET:-150}"; P4="${P4_BUDGET:-140}"; GRACE="${GRACE:-30}"
  "$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name() if ok else 'no GPU'); sys.exit(0 if ok else 2)" \
    || { echo "gpu_all.sh: no CUDA GPU here; GPU_REHEARSAL=1 rehearses on the CPU" >&2; exit 2; }
fi
mkdir -p "$ROOT/logs"
declare -A RC WALL
part() {  # part NAME BUDGET COMMAND...: run with a hard stop at BUDGET + GRACE, log, remember rc and seconds
  local name=$1 budget=$2; shift 2
  local t0=$SECONDS
  echo "=== $name (budget ${budget}s) $(date -u +%H:%M:%S)"
  timeout --kill-after=10 $((budget + GRACE)) "$@" 2>&1 | tee "$ROOT/logs/$name.log" | grep -v '%|' 
  RC[$name]=${PIPESTATUS[0]}; WALL[$name]=$((SECONDS - t0))
  echo "=== $name: exit ${RC[$name]} after ${WALL[$name]}s"
}
part part2_pruning_time "$P2" "$PY" -m wanda_core.gpu.llama_scale time --out "$ROOT/pruning_time" --budget-s "$P2" $FLAG
part part3_speedup "$P3" "$PY" -m wanda_core.gpu.speedup --out "$ROOT/speedup" --budget-s "$P3" --repeats 30 --stack-repeats 10 $FLAG
part part4_offload "$P4" "$PY" -m wanda_core.gpu.llama_scale offload --out "$ROOT/offload" --budget-s "$P4" $FLAG
"$PY" benchmarks/gpu_summary.py "$ROOT" $([ "$REHEARSE" = 1 ] && echo --rehearsal)
fail=0
for name in part2_pruning_time part3_speedup part4_offload; do
  echo "$name: exit ${RC[$name]}, ${WALL[$name]}s"; [ "${RC[$name]}" = 0 ] || fail=1
done
echo "records under $ROOT (total ${SECONDS}s)"
exit $fail
