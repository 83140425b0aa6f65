"""Back-of-envelope operation counts of the score+mask step (the pruning-time chapter).

    from wanda_core.study.experiments.costs import ARCH, op_counts
    op_counts(ARCH["LLaMA-7B"])        # {"wanda": ..., "sparsegpt": ...} operations for the whole model

Architectures are from the models' published config.json (hidden size, MLP width, blocks, width of
the key/value projections): facts about the models, not measurements.
"""
from __future__ import annotations

import math

ARCH = {
    "LLaMA-7B": dict(hidden=4096, mlp=11008, blocks=32, kv=4096),
    "SmolLM2-135M": dict(hidden=576, mlp=1536, blocks=30, kv=192),
}


def linear_shapes(hidden: int, mlp: int, kv: int) -> list[tuple[str, int, int]]:
    """(name, d_out, d_in) of the seven Linear layers of a LLaMA-style block."""
    return [("q_proj", hidden, hidden), ("k_proj", kv, hidden), ("v_proj", kv, hidden), ("o_proj", hidden, hidden),
            ("gate_proj", mlp, hidden), ("up_proj", mlp, hidden), ("down_proj", hidden, mlp)]


def op_counts(arch: dict[str, int]) -> dict[str, float]:
    """Rough operation counts of the score+mask step for one whole model.

    Wanda: a product per weight, then a sort of every row: d_out * d_in * log2(d_in).
    SparseGPT: factorising and inverting the d_in x d_in Hessian (about d_in^3) and the OBS
    updates of the remaining columns (about d_out * d_in^2)."""
    w = s = 0.0
    for _, d_out, d_in in linear_shapes(arch["hidden"], arch["mlp"], arch["kv"]):
        w += d_out * d_in * (1 + math.log2(d_in))
        s += d_in**3 + d_out * d_in**2
    return {"wanda": w * arch["blocks"], "sparsegpt": s * arch["blocks"]}
