#!/usr/bin/env bash
# Measure the 2:4 speed-up on this machine's NVIDIA GPU (Ampere or newer) and write the run records to
# results/speedup/ (commit them: notebooks/10_speedup.md reads them). Expect a few minutes on an H100;
# measuring stops after --budget-s seconds (default 480) and whatever is left is recorded as skipped.
# Extra arguments pass through, e.g. --quick for a smoke check. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m wanda_core.gpu.speedup --out results/speedup "$@"
