"""SparseGPT's weight update (Frantar & Alistarh, 2023), as the Wanda paper's baseline and ablations.

Given a layer's weight W (rows = outputs, columns = inputs) and the Hessian of its reconstruction
loss H = (2/n) sum_x x x^T over calibration inputs, go through the columns left to right; when a
weight is removed, spread its error over the not-yet-processed columns of the same row with the
inverse Hessian (optimal brain surgeon), so that W_pruned X stays close to W X. Updates to far
columns are batched in blocks of `blocksize` columns (the "lazy" update).

Which weights to remove (`mask_mode`):
- "sparsegpt": SparseGPT's own choice, w^2 / [H^-1]_jj^2, made block by block on the updated
  weights (unstructured: one threshold per block over the whole layer; N:M: within each M).
- "fixed": a mask decided before any update (the Wanda paper's "sequential" ablation: Wanda's or
  magnitude's mask, then SparseGPT's update).
- "score": a score function (W_block, column_slice) -> score, re-evaluated block by block on the
  updated weights (the "iterative" ablation), selected per row within the block.

    W_new, mask = sparsegpt_prune(W, H, sparsity=0.5)
"""
from __future__ import annotations

from typing import Callable

import torch

from .masks import nm_mask, unstructured_mask


def inverse_hessian_cholesky(H: torch.Tensor, W: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp I)^-1; dead inputs (never active) get zeroed weights."""
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    H.diagonal().add_(damp)
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    return torch.linalg.cholesky(Hinv, upper=True)


@torch.no_grad()
def sparsegpt_prune(
    W: torch.Tensor,
    H: torch.Tensor,
    sparsity: float = 0.5,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
    mask_mode: str = "sparsegpt",
    fixed_mask: torch.Tensor | None = None,
    score_fn: Callable[[torch.Tensor, slice], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pruned-and-updated copy of W (float32) and the mask (True = pruned)."""
    if mask_mode not in ("sparsegpt", "fixed", "score"):
        raise ValueError(f"unknown mask_mode {mask_mode!r}; valid: sparsegpt, fixed, score")
    if mask_mode == "fixed" and (fixed_mask is None or fixed_mask.shape != W.shape):
        raise ValueError("mask_mode 'fixed' needs fixed_mask shaped like W")
    if mask_mode == "score" and score_fn is None:
        raise ValueError("mask_mode 'score' needs score_fn")
    W = W.detach().clone().float()
    rows, cols = W.shape
    m = nm[1] if nm else 0
    if nm and blocksize % m:
        raise ValueError(f"blocksize {blocksize} must be a multiple of M={m} for N:M")
    Hinv = inverse_hessian_cholesky(H.float(), W, percdamp)
    mask = torch.zeros_like(W, dtype=torch.bool)

    for b0 in range(0, cols, blocksize):
        b1 = min(b0 + blocksize, cols)
        W1 = W[:, b0:b1].clone()
        Hinv1 = Hinv[b0:b1, b0:b1]
        d = torch.diag(Hinv1)
        Err1 = torch.zeros_like(W1)
        if mask_mode == "fixed":
            mask1 = fixed_mask[:, b0:b1].clone()
        elif mask_mode == "score" and not nm:
            mask1 = unstructured_mask(score_fn(W1, slice(b0, b1)), sparsity, "row")
        elif not nm:
            mask1 = unstructured_mask(W1**2 / d.reshape(1, -1) ** 2, sparsity, "layer")
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(b1 - b0):
            if nm and mask_mode != "fixed" and i % m == 0:
                # N:M choices are made on the weights as updated so far, M columns at a time
                if mask_mode == "score":
                    s = score_fn(W1[:, i : i + m], slice(b0 + i, b0 + i + m))
                else:
                    s = W1[:, i : i + m] ** 2 / d[i : i + m].reshape(1, -1) ** 2
                mask1[:, i : i + m] = nm_mask(s, *nm)
            # the error of zeroing the masked weights of column i, spread over the later columns;
            # this also leaves column i at exactly its pruned value w * (1 - mask) (up to rounding)
            err = W1[:, i] * mask1[:, i] / d[i]
            W1[:, i:].addr_(err, Hinv1[i, i:], alpha=-1)
            Err1[:, i] = err
        W1[mask1] = 0
        W[:, b0:b1] = W1
        mask[:, b0:b1] = mask1
        W[:, b1:] -= Err1 @ Hinv[b0:b1, b1:]
    W[mask] = 0  # exact zeros where pruned (the update above leaves them at 0 already)
    return W, mask
