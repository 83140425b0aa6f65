"""Print the headline numbers of a GPU session's records (the end of `benchmarks/gpu_all.sh`), so the
log of the run says what was measured even before the records are copied back.

    python benchmarks/gpu_summary.py results             # committed records
    python benchmarks/gpu_summary.py /tmp/wanda_gpu_rehearsal --rehearsal
"""
import sys
from pathlib import Path

import pandas as pd

from wanda_core.study.experiments.speedup import speedup
from wanda_core.study.experiments.timing import gpu_runs, offload_runs

root, rehearsal = Path(sys.argv[1]), "--rehearsal" in sys.argv
pd.set_option("display.width", 200, "display.max_columns", 20)
t = gpu_runs(root / "pruning_time", rehearsal)
print("part 2, pruning time:\n", t[["method", "phase", "blocks", "nsamples", "score_mask_s", "total_s",
                                    "model_score_mask_s", "paper_setting_total_s", "peak_device_gib", "error"]])
o = offload_runs(root / "offload", rehearsal)
print("part 4, offload:\n", o[["shape", "model_gib", "cap_gib", "fits_without_offload", "total_s",
                               "peak_device_gib", "error"]])
if rehearsal:  # the reader leaves rehearsal records out; count their rows instead
    from wanda_core.gpu.speedup.read import load_results

    df = load_results(root / "speedup", rehearsal=True)
    print(f"part 3, speed-up (rehearsal): {df['median_ms'].notna().sum()} timed, {df['error'].notna().sum()} errors")
else:
    s = speedup(root / "speedup")
    print("part 3, speed-up per block's linears (2048 tokens):\n", s["blocks"])
    print(s["stack"][["phase", "batch", "dtype", "backend", "mode", "dense_ms", "sparse_ms", "speedup"]])
