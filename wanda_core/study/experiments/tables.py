"""The paper's Table 3 on the profile's model: unstructured 50% (chapter 2) and N:M (chapter 3).

    from wanda_core.study.experiments import tables
    t3 = tables.table3(P)          # dense, magnitude, SparseGPT, Wanda at 50% unstructured
    nm = tables.nm_table(P)        # the same four runs plus 4:8 and 2:4 for each method

The configurations are declared here once; the chapters that build on these runs (the zero-shot
chapter, the ablations, the reproduction notes) call these functions and so reuse the records.
Pruned weights of the unstructured and 2:4 runs are kept on disk for later evaluations.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from wanda_core.study.experiments.common import PAPER_METHODS, records, runs

STRUCTURES = ("unstructured", "4:8", "2:4")


def table3_configs(P) -> list:
    """Dense and the three methods at 50% unstructured (weights kept for the zero-shot chapter)."""
    return [P.config(method="dense")] + [P.config(method=m, sparsity=0.5, save_weights=True) for m in PAPER_METHODS]


def nm_configs(P) -> list:
    """Table 3's runs plus 4:8 and 2:4 for each method (2:4 weights kept for the pattern check)."""
    return table3_configs(P) + [P.config(method=m, structure=s, save_weights=s == "2:4")
                                for s in STRUCTURES[1:] for m in PAPER_METHODS]


def dense(P) -> pd.DataFrame:
    """The dense baseline alone (chapter 1): one row."""
    return runs(P, table3_configs(P)[:1], "dense baseline")


def table3(P) -> pd.DataFrame:
    """Table 3, unstructured 50%: one row per method (dense first)."""
    return runs(P, table3_configs(P), "Table 3, unstructured")


def nm_table(P) -> pd.DataFrame:
    """Table 3 with its N:M columns: one row per (method, structure), dense first."""
    return runs(P, nm_configs(P), "Table 3, N:M")


def per_block(df: pd.DataFrame, P) -> pd.DataFrame:
    """Long table of the pruned runs: method, structure, block, sparsity (zeros in the block's Linears)."""
    rows = [{"method": r["config"]["method"], "structure": r["config"]["structure"], "block": b, "sparsity": s}
            for r in records(df[df["method"] != "dense"], P)
            for b, s in enumerate(((r.get("prune") or {}).get("sparsity") or {}).get("per_block", []))]
    return pd.DataFrame(rows, columns=["method", "structure", "block", "sparsity"])


def sparsity_check(df: pd.DataFrame, P) -> pd.DataFrame:
    """One row per pruned run: target and achieved sparsity, the extremes per block and per Linear,
    and the share of all parameters that are zero (the embeddings and head stay dense)."""
    rows = []
    for r in records(df[df["method"] != "dense"], P):
        sp = r["prune"]["sparsity"]
        pl = list((sp.get("per_linear") or {"-": 0.0}).values())
        rows.append({"method": r["config"]["method"], "structure": r["config"]["structure"],
                     "sparsity": r["prune_fields"]["sparsity"], "actual_sparsity": sp["overall"],
                     "min_block": min(sp["per_block"]), "max_block": max(sp["per_block"]),
                     "min_linear": min(pl), "max_linear": max(pl), "zeroed": sp["pruned_params"],
                     "share_of_all": sp["pruned_params"] / r["model"]["params"]})
    return pd.DataFrame(rows)


def pattern_check(df: pd.DataFrame, P) -> pd.DataFrame:
    """For every N:M run whose pruned weights are on disk: how many groups of M consecutive weights
    hold more than N non-zeros (0 for a true N:M pattern)."""
    import torch

    rows = []
    for rid, s, m in df[df["structure"].str.contains(":")][["id", "structure", "method"]].itertuples(index=False):
        path = Path(P.runs_dir) / "weights" / f"{rid}.pt"
        if not path.is_file():
            continue
        n, size = map(int, s.split(":"))
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        nonzero = [(W.reshape(W.shape[0], -1, size) != 0).sum(-1) for W in state.values()]
        rows.append({"method": m, "structure": s, "linears": len(state), "groups": sum(z.numel() for z in nonzero),
                     "bad_groups": sum(int((z > n).sum()) for z in nonzero)})
    return pd.DataFrame(rows, columns=["method", "structure", "linears", "groups", "bad_groups"])
