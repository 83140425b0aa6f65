"""Refinement: improve a chosen mask without training. Pure functions on tensors.

DSnoT (Zhang et al., ICLR 2024, "Dynamic Sparse No Training", zyxxmu/DSnoT) swaps weights within
each row: it regrows one pruned weight and prunes one kept weight per cycle, so every row keeps its
count of zeros exactly. It steers the *expected* reconstruction error of output i,

    e_i = sum over pruned j of W_ij * E_win[x_j]      (E_win: the sum of x_j over a window's tokens,
                                                       averaged over windows, the official scale)

towards zero. Rows whose |e_i| is at most `threshold` (0.1) stop; at most `cycles` (50) swaps.
As the official code (defaults as its README's command):

- regrow: if e_i > 0 the pruned weight with the largest W_ij E[x_j] / Var(x_j)^p, if e_i <= 0 the
  most negative one (p = 1; Var is the variance of x_j within a window, averaged over windows);
- prune, unstructured: among kept weights whose W_ij E[x_j] has the sign that moves e_i towards
  zero, the one with the lowest Wanda score |W_ij| ||X_j||; no check that e_i keeps its sign
  (the official `--without_same_sign` defaults to True);
- prune, N:M: the kept weight with the lowest initial score in the regrown weight's block of M,
  and the swap only if e_i keeps its sign (so the N:M pattern holds);
- `skip`: the Linears left as they are: "mlp" (the official default: only attention projections
  are refined), "attn", or "none".

Where the official code would run past the candidates of one sign (its sorted list then yields
kept weights with value 0, and the row loses its exact count) we stop that row instead.

    mask = dsnot(W, mask, stats, score=s, nm=None)    # mask: True = pruned, as masks.py
"""
from __future__ import annotations

import torch

from wanda_core.prune.scores import LayerStats

REFINES = ("none", "dsnot")
DSNOT_SKIPS = ("mlp", "attn", "none")
_ATTN_PREFIXES = ("self_attn", "attention", "attn")  # LLaMA/OPT/Gemma, GPT-NeoX; the rest is the MLP


def accumulate_moments(stats: LayerStats, x: torch.Tensor) -> None:
    """Add a batch of inputs (windows, tokens, features) to stats: the running mean of x_j over
    tokens and the running mean over windows of x_j's within-window variance (DSnoT's statistics)."""
    x = x.detach().float()
    x = x.reshape(1, *x.shape) if x.dim() == 2 else x.reshape(-1, x.shape[-2], x.shape[-1])
    b, t = x.shape[0], x.shape[0] * x.shape[1]
    if stats.input_mean is None:
        stats.input_mean = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
        stats.input_var = torch.zeros_like(stats.input_mean)
    n_tok, n_win = stats.moment_tokens, stats.windows
    stats.input_mean.mul_(n_tok / (n_tok + t)).add_(x.sum((0, 1)), alpha=1 / (n_tok + t))
    stats.input_var.mul_(n_win / (n_win + b)).add_(x.var(dim=1, unbiased=False).sum(0), alpha=1 / (n_win + b))
    stats.moment_tokens, stats.windows = n_tok + t, n_win + b


def is_attention(name: str) -> bool:
    return name.split(".")[0] in _ATTN_PREFIXES


def skipped(name: str, skip: str) -> bool:
    """Does DSnoT leave this Linear (by its name inside the block) with its initial mask?"""
    if skip not in DSNOT_SKIPS:
        raise ValueError(f"unknown dsnot_skip {skip!r}; valid: {', '.join(DSNOT_SKIPS)}")
    return (skip == "mlp" and not is_attention(name)) or (skip == "attn" and is_attention(name))


@torch.no_grad()
def dsnot(W: torch.Tensor, mask: torch.Tensor, stats: LayerStats, score: torch.Tensor | None = None,
          nm: tuple[int, int] | None = None, cycles: int = 50, threshold: float = 0.1,
          var_power: float = 1.0) -> torch.Tensor:
    """DSnoT's prune-and-grow on `mask` (True = pruned); returns a new mask, same count per row.

    `score` is the score the initial mask was chosen with (used to pick what to prune under N:M)."""
    if stats is None or stats.input_mean is None or stats.input_sq_mean is None:
        raise ValueError("dsnot needs the layer's input mean, variance and mean square (calibration statistics)")
    if mask.shape != W.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor shaped like W {tuple(W.shape)}, got {mask.dtype} {tuple(mask.shape)}")
    Wf = W.float()
    per_window = stats.input_mean * (stats.moment_tokens / max(stats.windows, 1))
    metric = Wf * per_window.to(W.device).reshape(1, -1)           # W_ij E_win[x_j]
    grow_key = metric / stats.input_var.to(W.device).clamp_min(1e-12).reshape(1, -1) ** var_power
    mask = mask.clone()
    if nm is not None:
        if score is None:
            raise ValueError("dsnot under N:M needs the initial score")
        return _dsnot_nm(metric, grow_key, mask, score.float(), nm[1], cycles, threshold)
    wanda = Wf.abs() * stats.input_norm.to(W.device).reshape(1, -1)
    return _dsnot_unstructured(metric, grow_key, wanda, mask, cycles, threshold)


def _ordered(key: torch.Tensor, valid: torch.Tensor, descending: bool = False):
    """Per row: column indices of the `valid` entries sorted by key (invalid ones last), and counts."""
    fill = float("-inf") if descending else float("inf")
    order = torch.sort(key.masked_fill(~valid, fill), dim=1, descending=descending, stable=True)[1]
    return order, valid.sum(1)


def _pick(order, count, ptr, rows):
    ok = ptr < count
    return order[rows, ptr.clamp(max=order.shape[1] - 1)], ok


def _dsnot_unstructured(metric, grow_key, wanda, mask, cycles, threshold):
    rows = torch.arange(mask.shape[0], device=mask.device)
    err = (metric * mask).sum(1)
    kept = ~mask
    # regrow candidates: pruned, most negative key first / largest positive key first
    g_neg, n_g_neg = _ordered(grow_key, mask & (grow_key < 0))
    g_pos, n_g_pos = _ordered(grow_key, mask & (grow_key > 0), descending=True)
    # prune candidates: kept, by Wanda score ascending, split by the sign of their metric
    p_neg, n_p_neg = _ordered(wanda, kept & (metric < 0))
    p_pos, n_p_pos = _ordered(wanda, kept & (metric > 0))
    ptr = {k: torch.zeros_like(err, dtype=torch.long) for k in ("gn", "gp", "pn", "pp")}
    active = torch.ones_like(err, dtype=torch.bool)
    for _ in range(cycles):
        active &= err.abs() > threshold
        if not bool(active.any()):
            break
        pos = err > 0                                    # e > 0: grow a positive, prune a negative
        gn, ok_gn = _pick(g_neg, n_g_neg, ptr["gn"], rows)
        gp, ok_gp = _pick(g_pos, n_g_pos, ptr["gp"], rows)
        pn, ok_pn = _pick(p_neg, n_p_neg, ptr["pn"], rows)
        pp, ok_pp = _pick(p_pos, n_p_pos, ptr["pp"], rows)
        grow, ok_g = torch.where(pos, gp, gn), torch.where(pos, ok_gp, ok_gn)
        prune_neg = ~(err < 0)                           # the official: e >= 0 prunes from the negatives
        prune, ok_p = torch.where(prune_neg, pn, pp), torch.where(prune_neg, ok_pn, ok_pp)
        active &= ok_g & ok_p                            # a row out of candidates of one sign stops
        ptr["gp"] += (active & pos).long()
        ptr["gn"] += (active & ~pos).long()
        ptr["pn"] += (active & prune_neg).long()
        ptr["pp"] += (active & ~prune_neg).long()
        r, g, p = rows[active], grow[active], prune[active]
        err[active] += metric[r, p] - metric[r, g]
        mask[r, p] = True
        mask[r, g] = False
    return mask


def _dsnot_nm(metric, grow_key, mask, score, m, cycles, threshold):
    rows = torch.arange(mask.shape[0], device=mask.device)
    err = (metric * mask).sum(1)
    sign0 = torch.sign(err)
    g_neg, n_g_neg = _ordered(grow_key, mask & (grow_key < 0))
    g_pos, n_g_pos = _ordered(grow_key, mask & (grow_key > 0), descending=True)
    prunable = score.masked_fill(mask, float("inf"))    # initially pruned (and newly pruned): never again
    ptr_n, ptr_p = torch.zeros_like(err, dtype=torch.long), torch.zeros_like(err, dtype=torch.long)
    active = torch.ones_like(err, dtype=torch.bool)
    offs = torch.arange(m, device=mask.device)
    for _ in range(cycles):
        active &= err.abs() > threshold
        if not bool(active.any()):
            break
        pos = err > 0
        gn, ok_gn = _pick(g_neg, n_g_neg, ptr_n, rows)
        gp, ok_gp = _pick(g_pos, n_g_pos, ptr_p, rows)
        grow, ok_g = torch.where(pos, gp, gn), torch.where(pos, ok_gp, ok_gn)
        cols = (grow - grow % m).reshape(-1, 1) + offs  # the regrown weight's block of M
        block = prunable.gather(1, cols)
        best, j = block.min(1)
        prune = cols.gather(1, j.reshape(-1, 1)).squeeze(1)
        after = err + metric[rows, prune] - metric[rows, grow]
        active &= ok_g & torch.isfinite(best) & (torch.sign(after) == sign0)
        ptr_p += (ok_g & pos).long()
        ptr_n += (ok_g & ~pos).long()
        r, g, p = rows[active], grow[active], prune[active]
        prunable[r, p] = float("inf")
        err[active] = after[active]
        mask[r, p] = True
        mask[r, g] = False
    return mask
