"""Pruning cost side by side, measured in one run on the embedded default (or any model).

    python benchmarks/prune_speed.py                         # SmolLM2-135M, 32 windows x 256 tokens
    python benchmarks/prune_speed.py --nsamples 128 --seqlen 512 --json out.json

Prints, for the same calibration windows: one dense forward pass over them (the unit), the total
wall time of magnitude, Wanda and SparseGPT pruning, the score-and-mask time alone (the paper's
"pruning time": no forward passes), and peak memory, with the ratios the issue's targets name:
Wanda total / dense forward (target <= 2.5), Wanda score+mask / SparseGPT score+mask (the paper:
0.54 s / 203 s on LLaMA-7B), peak memory / (model + calibration activations + one block).
Nothing here is asserted: it is a measurement to read, not a test.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from wanda_core import RunConfig
from wanda_core import data, engine
from wanda_core.models import find_blocks
from wanda_core.records import provenance
from wanda_core.runner import PeakMemory, get_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the measurements here")
    a = ap.parse_args()

    base = RunConfig(model=a.model, nsamples=a.nsamples, seqlen=a.seqlen, batch_size=a.batch_size, device=a.device)
    model, tok, info = get_model(base)
    windows, _ = data.calibration_windows(tok, base.calib, a.nsamples, a.seqlen, 0)

    with torch.no_grad(), PeakMemory(a.device) as mem_dense:
        model(input_ids=windows[: a.batch_size].to(a.device))  # warm-up
        t = time.perf_counter()
        for i in range(0, len(windows), a.batch_size):
            model(input_ids=windows[i : i + a.batch_size].to(a.device))
        dense_fwd = time.perf_counter() - t

    rows = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        cfg = base.replace(method=method)
        model, _, _ = get_model(cfg)  # restores the dense weights
        with PeakMemory(a.device) as mem:
            t = time.perf_counter()
            rep = engine.prune_model(model, cfg, windows, progress=False)
            wall = time.perf_counter() - t
        rows[method] = {"wall_s": wall, "score_mask_s": rep["seconds"]["score_mask"],
                        "forward_s": rep["seconds"]["statistics_forward"] + rep["seconds"]["reforward"] + rep["seconds"]["capture"],
                        "peak_mb": mem.mb, "sparsity": rep["sparsity"]["overall"]}

    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    hidden = model.config.hidden_size
    acts_mb = 2 * a.nsamples * a.seqlen * hidden * 4 / 2**20  # block inputs + outputs, float32
    block_mb = sum(p.numel() * 4 for p in find_blocks(model)[0].parameters()) / 2**20
    w, s = rows["wanda"], rows["sparsegpt"]
    print(f"\n{info.name}: {a.nsamples} calibration windows x {a.seqlen} tokens, batch {a.batch_size}, {a.device}, "
          f"{torch.get_num_threads()} threads\n")
    print(f"{'':28s}{'wall s':>10s}{'score+mask s':>14s}{'forward s':>11s}{'peak MB':>10s}{'sparsity':>10s}")
    print(f"{'dense forward (1 pass)':28s}{dense_fwd:10.2f}{'':>14s}{dense_fwd:11.2f}{mem_dense.mb:10.0f}")
    for m, r in rows.items():
        print(f"{m:28s}{r['wall_s']:10.2f}{r['score_mask_s']:14.3f}{r['forward_s']:11.2f}{r['peak_mb']:10.0f}{r['sparsity']:10.3f}")
    print("\nratios")
    print(f"  Wanda total / one dense forward       {w['wall_s'] / dense_fwd:8.2f}   (target <= 2.5)")
    print(f"  SparseGPT total / one dense forward   {s['wall_s'] / dense_fwd:8.2f}")
    print(f"  Wanda score+mask / SparseGPT's        {w['score_mask_s'] / s['score_mask_s']:8.4f}   (paper, LLaMA-7B on A6000: 0.54/203.1 = 0.0027)")
    print(f"  SparseGPT / Wanda score+mask          {s['score_mask_s'] / w['score_mask_s']:8.1f}x")
    budget = params_mb + acts_mb + block_mb
    print(f"  Wanda peak / (model {params_mb:.0f} + activations {acts_mb:.0f} + block {block_mb:.0f} MB)"
          f"  {w['peak_mb'] / budget:8.2f}   (process RSS includes the Python/torch runtime)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"dense_forward_s": dense_fwd, "methods": rows, "model_mb": params_mb, "activations_mb": acts_mb,
                       "block_mb": block_mb, "provenance": provenance(a.device),
                       "settings": vars(a)}, f, indent=1)


if __name__ == "__main__":
    main()
