"""Masks: which weights to remove, given a score per weight. Pure functions on tensors.

Convention (as in the official Wanda code): a mask is a bool tensor shaped like the weight,
True where the weight is *pruned* (set to zero). Lower score = less important = pruned first.

- `unstructured_mask(score, sparsity, group)`: remove the `sparsity` fraction of weights with the
  lowest score inside each comparison group: "row" (per output neuron, Wanda's choice), "column"
  (per input feature), or "layer" (one threshold for the whole matrix, magnitude pruning's).
- `nm_mask(score, n, m)`: N:M semi-structured sparsity: in every group of M consecutive weights
  along the input dimension keep the N highest-scoring ones (2:4 keeps 2 of every 4).
- `threshold_mask(score, sparsity)`: the official `prune_magnitude` rule for the paper's
  magnitude baseline: one threshold per layer, and every weight at or below it is removed, so
  tied scores (and the threshold itself) can push the layer past the target sparsity.

    >>> import torch
    >>> unstructured_mask(torch.tensor([[4., 1., 3., 2.]]), 0.5, "row")
    tensor([[False,  True, False,  True]])
"""
from __future__ import annotations

import math

import numpy as np
import torch

GROUPS = ("row", "column", "layer")
RULES = ("exact", "threshold")  # exact counts per group, or the official magnitude threshold (see threshold_mask)


def check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool) or math.isnan(sparsity):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (the fraction of weights removed), got {sparsity}")
    return float(sparsity)


def check_group(group: str) -> str:
    if group not in GROUPS:
        raise ValueError(f"unknown comparison group {group!r}; valid: {', '.join(GROUPS)}")
    return group


def check_nm(n: int, m: int, in_features: int | None = None) -> tuple[int, int]:
    if not (isinstance(n, int) and isinstance(m, int)) or n < 1 or m < 2 or n >= m:
        raise ValueError(f"N:M needs whole numbers 1 <= N < M (keep N of every M), got {n}:{m}")
    if in_features is not None and in_features % m != 0:
        raise ValueError(
            f"N:M = {n}:{m} needs M to divide the layer's input width, but {m} does not divide "
            f"{in_features}; valid M here are the divisors of {in_features}"
        )
    return n, m


def unstructured_mask(score: torch.Tensor, sparsity: float, group: str = "row") -> torch.Tensor:
    """True for the `sparsity` fraction of lowest-score weights within each comparison group.

    Each group removes exactly int(size * sparsity) weights (the official code's rounding), ties
    broken by position via a stable sort so the result is deterministic.
    """
    check_sparsity(sparsity)
    check_group(group)
    if score.dim() != 2:
        raise ValueError(f"score must be 2-D (out_features, in_features), got shape {tuple(score.shape)}")
    if group == "layer":
        flat = score.reshape(1, -1)
        return _lowest_k_per_row(flat, int(flat.shape[1] * sparsity)).reshape(score.shape)
    if group == "row":
        return _lowest_k_per_row(score, int(score.shape[1] * sparsity))
    return _lowest_k_per_row(score.t(), int(score.shape[0] * sparsity)).t()


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True for the M-N lowest-score weights in every block of M consecutive inputs."""
    if score.dim() != 2:
        raise ValueError(f"score must be 2-D (out_features, in_features), got shape {tuple(score.shape)}")
    check_nm(n, m, score.shape[1])
    blocks = score.reshape(score.shape[0], -1, m)
    mask = _lowest_k_per_row(blocks.reshape(-1, m), m - n)
    return mask.reshape(score.shape)


_BRACKET_MIN = 16384  # below this one introselect over the whole row is as fast


def kth_smallest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value (1-based) of each row, shape (..., 1): the very value torch.kthvalue
    returns. On a CPU, rows of 64 or more go through numpy's introselect (np.partition), 5-20x
    faster than torch.kthvalue there (which SparseGPT's block-wise mask choice calls thousands of
    times); short rows (N:M groups of 4) stay in torch, which is faster for them."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.shape[-1] >= 64:
        a = x.detach().contiguous().numpy()
        if a.ndim == 2 and a.shape[0] == 1 and a.shape[1] >= _BRACKET_MIN:  # one long row: a layer's threshold
            return torch.from_numpy(np.array([[_kth_bracketed(a[0], k)]], dtype=a.dtype))
        return torch.from_numpy(np.partition(a, k - 1, axis=-1)[..., k - 1 : k].copy())
    return torch.kthvalue(x, k, dim=-1, keepdim=True).values


def _kth_bracketed(a: np.ndarray, k: int):
    """The k-th smallest (1-based) of a long 1-D array, exactly, in ~3 passes instead of a full
    introselect (3-5x faster at 10^5 values): a strided sample of ~4,000 values brackets it, only
    the values inside the bracket are partitioned. If the bracket misses (it is verified by
    counting), the whole array is partitioned instead, so the result never depends on the sample."""
    n = a.size
    sample = np.sort(a[:: n // 4096])
    m = sample.size
    q, margin = (k - 1) / n * m, 4 * np.sqrt(m) + 8  # ~4 standard deviations of the sample's rank
    lo, hi = sample[max(int(q - margin), 0)], sample[min(int(q + margin), m - 1)]
    below = int(np.count_nonzero(a < lo))
    inside = a[(a >= lo) & (a <= hi)]
    if below < k <= below + inside.size:
        return np.partition(inside, k - 1 - below)[k - 1 - below]
    return np.partition(a, k - 1)[k - 1]


def _lowest_k_per_row(score: torch.Tensor, k: int) -> torch.Tensor:
    """True for the k lowest entries of each row; ties at the threshold go left to right, exactly
    as a stable sort would choose (the official code's `torch.sort(..., stable=True)`), but via a
    k-th value selection, which is about twice as fast as sorting on a CPU."""
    n = score.shape[-1]
    if k <= 0:
        return torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if k >= n:
        return torch.ones(score.shape, dtype=torch.bool, device=score.device)
    kth = kth_smallest(score, k)
    mask = score < kth
    tie = score == kth
    need = k - mask.sum(-1, keepdim=True)
    if bool((tie.sum(-1, keepdim=True) != need).any()):  # ties straddle the threshold in some row
        tie &= torch.cumsum(tie, dim=-1) <= need
    return mask | tie


def threshold_mask(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The official `prune_magnitude` rule: thresh = the layer's sorted scores at index
    int(numel * sparsity) (0-based), and True for every score <= thresh. Without ties that removes
    int(numel * sparsity) + 1 weights; with ties at the threshold, all of them. Sparsity 0 removes
    nothing (the official main.py skips pruning at ratio 0)."""
    check_sparsity(sparsity)
    if sparsity == 0:
        return torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    flat = score.reshape(-1)
    thresh = kth_smallest(flat.reshape(1, -1), int(flat.numel() * sparsity) + 1).reshape(())  # == sort(flat)[int(numel*s)]
    return score <= thresh


def structure_mask(score: torch.Tensor, sparsity: float, group: str, nm: tuple[int, int] | None,
                   rule: str = "exact") -> torch.Tensor:
    """One entry point for the engine: N:M if `nm` is given, else unstructured in `group`;
    rule "threshold" (RunConfig.mask_rule of the paper's magnitude baseline, layer group only)
    uses the official threshold instead of exact counts."""
    if rule not in RULES:
        raise ValueError(f"unknown mask rule {rule!r}; valid: {', '.join(RULES)}")
    if nm is not None:
        return nm_mask(score, *nm)
    if rule == "threshold":
        if group != "layer":
            raise ValueError(f"the threshold rule is the official magnitude baseline's, one threshold per layer; got group {group!r}")
        return threshold_mask(score, sparsity)
    return unstructured_mask(score, sparsity, group)


def mask_sparsity(mask: torch.Tensor) -> float:
    return float(mask.float().mean())


def alpha_mask(score: torch.Tensor, sparsity: float, tol: float = 1e-3) -> tuple[torch.Tensor, float]:
    """The official code's Wanda variant (`--use_variant`): in each row remove the lowest-score
    weights whose cumulative score stays within alpha x the row's total score; alpha is bisected
    in [0, 0.8] so the whole layer reaches `sparsity` (rows end up with different sparsities).
    Returns (mask, alpha)."""
    check_sparsity(sparsity)
    s = score.float()
    sorted_s, order = torch.sort(s, dim=-1)
    cum = torch.cumsum(sorted_s, dim=-1)
    total = s.sum(dim=-1, keepdim=True)

    def mask_at(alpha: float) -> torch.Tensor:
        k = (cum <= total * alpha).sum(dim=-1, keepdim=True)  # weights removed per row
        ranks = torch.arange(s.shape[1], device=s.device).expand_as(s)
        pruned_sorted = ranks < k
        return torch.zeros_like(pruned_sorted).scatter(-1, order, pruned_sorted)

    lo, hi, alpha = 0.0, 0.8, 0.4
    mask = mask_at(alpha)
    while abs(mask_sparsity(mask) - sparsity) > tol and hi - lo >= tol:
        if mask_sparsity(mask) > sparsity:
            hi = alpha
        else:
            lo = alpha
        alpha = (lo + hi) / 2
        mask = mask_at(alpha)
    return mask, alpha
