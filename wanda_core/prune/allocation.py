"""Allocation: how much of each decoder block to prune. Pure functions on numbers and tensors.

Wanda prunes every layer to the same sparsity ("uniform"). OWL (Yin et al., ICML 2024, "Outlier
Weighed Layerwise Sparsity", luuyin/OWL) gives each block its own sparsity from its *outlier
ratio*: the share of the block's Wanda scores |W_ij| * ||X_j|| (all its Linears together) above
M times their mean, M = 5. Blocks with more outliers keep more weights. As the official code:

    D_l = (r_l - min r) / (max r - min r) * 2 * lambda      (so D spans exactly [0, 2 * lambda])
    s_l = target - (D_l - mean D)                            (lambda = 0.08)

The official code takes the plain mean over blocks, which equals the parameter-weighted mean here
because every decoder block of a model has the same size; we weight by parameters so that the
pruned share of the whole model is the target even where blocks differ. The sparsities span
2 * lambda around the target (max - min = 2 * lambda when the ratios differ), each block
between target - 2 * lambda and target + 2 * lambda.

The ratios come from a pass over the *dense* model (inputs of block l are the dense outputs of
block l - 1), before any pruning, as the official code does; the engine runs that pass and hands
the scores here.

    r = outlier_ratio([score_q, score_k, ...], m=5.0)      # one block
    s = owl_sparsities(ratios, target=0.7, lam=0.08, sizes=params_per_block)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

ALLOCATIONS = ("uniform", "owl")


def check_owl(target: float, lam: float, m: float) -> None:
    """OWL's parameters: lambda in [0, target), M > 0 (errors name the value and what is valid)."""
    for name, v in (("owl_lambda", lam), ("owl_m", m)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
            raise ValueError(f"{name} must be a number, got {v!r}")
    if not 0 <= lam < target:
        raise ValueError(f"owl_lambda must be in [0, target sparsity) = [0, {target:g}), got {lam:g} "
                         f"(OWL's default is 0.08)")
    if m <= 0:
        raise ValueError(f"owl_m must be > 0 (an outlier is a score above M x the block's mean), got {m:g}; "
                         f"OWL's default is 5")


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Share of the block's scores (all its Linears, flattened together) above m x their mean."""
    flat = torch.cat([s.detach().float().flatten().cpu() for s in scores])
    if flat.numel() == 0:
        raise ValueError("outlier_ratio needs at least one score")
    return float((flat > flat.mean() * m).float().mean())


def owl_sparsities(ratios: Sequence[float], target: float, lam: float,
                   sizes: Sequence[int] | None = None) -> list[float]:
    """Per-block sparsities from outlier ratios (OWL's mapping), parameter-weighted mean = target.

    Raises ValueError if a block would fall outside [0, 1) (choose a smaller lambda)."""
    r = torch.tensor([float(x) for x in ratios], dtype=torch.float64)
    if r.numel() == 0:
        raise ValueError("owl_sparsities needs one outlier ratio per block, got none")
    w = torch.ones_like(r) if sizes is None else torch.tensor([float(x) for x in sizes], dtype=torch.float64)
    if w.shape != r.shape or bool((w <= 0).any()):
        raise ValueError(f"sizes must give one positive parameter count per block ({r.numel()}), got {list(sizes or [])}")
    span = float(r.max() - r.min())
    if span == 0:  # every block alike: nothing to redistribute (the official code would divide by 0)
        return [float(target)] * r.numel()
    d = (r - r.min()) / span * 2 * lam
    s = target - (d - (d * w).sum() / w.sum())
    bad = [(i, float(v)) for i, v in enumerate(s) if not 0 <= v < 1]
    if bad:
        i, v = bad[0]
        raise ValueError(f"OWL would give block {i} sparsity {v:.4f}, outside [0, 1) (target {target:g}, "
                         f"owl_lambda {lam:g}); choose owl_lambda below {_max_lambda(r, w, target):.4f}")
    return [float(v) for v in s]


def _max_lambda(r: torch.Tensor, w: torch.Tensor, target: float) -> float:
    """The largest lambda that keeps every block inside [0, 1) for these ratios."""
    d = (r - r.min()) / float(r.max() - r.min()) * 2  # deviations for lambda = 1
    dev = d - (d * w).sum() / w.sum()
    up, down = float(-dev.min()), float(dev.max())    # sparsity = target + lambda * (-dev)
    limits = [(1 - target) / up if up > 0 else math.inf, target / down if down > 0 else math.inf]
    return min(limits)


def block_sparsities(allocation: str, target: float, n_blocks: int, ratios: Sequence[float] | None = None,
                     lam: float = 0.08, sizes: Sequence[int] | None = None) -> list[float]:
    """One sparsity per block: the target everywhere ("uniform") or OWL's ("owl", needs ratios)."""
    if allocation == "uniform":
        return [float(target)] * n_blocks
    if allocation == "owl":
        if ratios is None or len(ratios) != n_blocks:
            raise ValueError(f"allocation 'owl' needs one outlier ratio per block ({n_blocks})")
        return owl_sparsities(ratios, target, lam, sizes)
    raise ValueError(f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)}")
