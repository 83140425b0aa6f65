"""Block offload rehearsal: prune the tiny models of every architecture with and without `offload`
and check the results are identical; on a GPU also with the activations in pinned CPU memory.

    python benchmarks/offload_rehearsal.py                 # CPU: "device" and offload both the CPU
    python benchmarks/offload_rehearsal.py --device cuda   # on a GPU (the gpu script calls this first)

Prints one line per (model, method, placement) with seconds and peak device memory; exits 1 if
any offloaded result differs from the ordinary engine's, so a device run stops before measuring.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from unittest import mock

import torch

from wanda_core import RunConfig
from wanda_core.prune import engine
from wanda_core.models.loaders import TINY, load_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=list(TINY))
    ap.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    a = ap.parse_args()
    windows = torch.randint(0, 1000, (4, 32), generator=torch.Generator().manual_seed(0))
    placements = ["offload"] + (["offload+pinned"] if a.device.startswith("cuda") else [])
    bad = 0
    for name in a.models:
        base, _, _ = load_model(name)  # on the CPU
        for method in a.methods:
            cfg = RunConfig(model=name, method=method, nsamples=4, seqlen=32, batch_size=2, blocksize=32, device=a.device)
            ref = copy.deepcopy(base).to(a.device)
            engine.prune_model(ref, cfg, windows, progress=False)
            for place in placements:
                model = copy.deepcopy(base)
                pin = mock.patch.object(engine, "activation_home", lambda *_: "pinned") if "pinned" in place else mock.MagicMock()
                t = time.perf_counter()
                with pin:
                    rep = engine.prune_model(model, cfg.replace(offload=True), windows, progress=False)
                same = all(torch.equal(p.cpu(), q) for p, q in zip(ref.parameters(), model.parameters()))
                on_cpu = all(p.device.type == "cpu" for p in model.parameters())
                bad += not (same and on_cpu)
                print(f"{name:14s} {method:10s} {place:15s} {time.perf_counter() - t:6.2f} s  peak device "
                      f"{rep.get('peak_device_mb', '-')} MB  identical {same}  weights on CPU {on_cpu}")
    print("offload rehearsal:", "FAILED" if bad else "ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
