"""The engine: layer-by-layer pruning, as in the official Wanda code.

1. Capture what block 0 receives for every calibration window (the embeddings), and the extra
   arguments each block is called with (attention mask, position ids, rotary embeddings, which
   differ per block for sliding-window models such as Gemma-3).
2. For each block: run the calibration inputs through the *dense* block with hooks on every
   nn.Linear to gather statistics (Wanda: running mean of x_j^2; SparseGPT: H = 2/n sum x x^T),
   prune every Linear of the block, then run the block again with the pruned weights: its outputs
   are the next block's inputs (so later blocks see the errors of earlier ones).
Methods that need no calibration data (magnitude) skip the forward passes altogether.
OWL's allocation (allocation.py) adds one pass over the dense model before step 2 to give each
block its own sparsity; DSnoT (refine.py) adjusts each Linear's mask once it is chosen.

    report = prune_model(model, cfg, calib_windows)   # cfg: RunConfig; windows: (n, seqlen) ids

Scores and masks are pure functions (scores.py, masks.py, sparsegpt.py); this file only moves
tensors around them. Embeddings and the LM head are never pruned (the paper's convention).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .allocation import block_sparsities, outlier_ratio
from .config import RunConfig
from .masks import alpha_mask, check_nm, structure_mask
from .models import find_blocks, find_linears
from .refine import accumulate_moments, dsnot, skipped
from .scores import LayerStats, check_score_output, get_score, wanda
from .sparsegpt import sparsegpt_prune

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by a hook to end a forward pass early (nothing after the hook is needed)."""


def check_model_for(cfg: RunConfig, model: nn.Module) -> None:
    """Errors that depend on the model, raised before any long work (N:M widths)."""
    blocks = find_blocks(model)
    lin = find_linears(blocks[0])
    if not lin:
        raise ValueError(f"no nn.Linear layers inside the decoder blocks of {type(model).__name__}")
    if cfg.nm:
        for b in blocks:
            for name, layer in find_linears(b).items():
                check_nm(*cfg.nm, layer.in_features)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def capture_block_inputs(model: nn.Module, windows: torch.Tensor, batch_size: int):
    """(inputs of block 0 for every window, per-block (args, kwargs) for a batch of one)."""
    blocks = find_blocks(model)
    device = next(model.parameters()).device
    inps: list[torch.Tensor] = []

    def grab_first(_mod, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        inps.append(h.detach())
        raise _Stop

    handle = blocks[0].register_forward_pre_hook(grab_first, with_kwargs=True)
    try:
        for i in range(0, len(windows), batch_size):
            try:
                model(input_ids=windows[i : i + batch_size].to(device), use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()

    # Each block's other arguments, seen once with a batch of one window: tensors in them have
    # batch size 1 and broadcast over any batch.
    per_block: list[Any] = [None] * len(blocks)

    def grab_kwargs(idx):
        def hook(_mod, args, kwargs):
            rest = args[1:]
            kw = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            per_block[idx] = (rest, kw)
            if idx == len(blocks) - 1:
                raise _Stop

        return hook

    handles = [b.register_forward_pre_hook(grab_kwargs(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        model(input_ids=windows[:1].to(device), use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return torch.cat(inps), per_block


def _run_block(block, inps: torch.Tensor, extra, batch_size: int, out: torch.Tensor | None = None):
    rest, kw = extra
    for i in range(0, len(inps), batch_size):
        o = block(inps[i : i + batch_size], *rest, **kw)
        o = o[0] if isinstance(o, (tuple, list)) else o
        if out is not None:
            out[i : i + batch_size] = o
    return out


class _StatsHook:
    """Accumulates a Linear layer's input statistics over calibration tokens, in float32."""

    def __init__(self, layer: nn.Linear, need_sq: bool, need_h: bool, need_moments: bool = False):
        self.need_sq, self.need_h, self.need_moments = need_sq, need_h, need_moments
        self.stats = LayerStats()
        n_in = layer.in_features
        dev = layer.weight.device
        if need_sq:
            self.stats.input_sq_mean = torch.zeros(n_in, dtype=torch.float32, device=dev)
        if need_h:
            self.stats.hessian = torch.zeros(n_in, n_in, dtype=torch.float32, device=dev)
        self.handle = layer.register_forward_hook(self)

    def __call__(self, _mod, inp, _out):
        if self.need_moments:  # DSnoT's per-window moments need the window axis
            accumulate_moments(self.stats, inp[0])
        x = inp[0].detach().reshape(-1, inp[0].shape[-1]).float()
        n, t = self.stats.tokens, x.shape[0]
        keep = n / (n + t)  # running means, so long calibration sets never overflow
        if self.need_sq:
            self.stats.input_sq_mean.mul_(keep).add_(x.pow(2).sum(0), alpha=1 / (n + t))
        if self.need_h:
            self.stats.hessian.mul_(keep).addmm_(x.t(), x, alpha=2 / (n + t))
        self.stats.tokens = n + t


def prune_linear(layer: nn.Linear, cfg: RunConfig, stats: LayerStats | None, score_fn=None,
                 sparsity: float | None = None, name: str = "") -> dict[str, Any]:
    """Prune one Linear in place (to `sparsity`, default the target); returns what happened."""
    W = layer.weight.data
    sparsity = cfg.target_sparsity if sparsity is None else sparsity
    info: dict[str, Any] = {}
    score = score_fn or get_score(cfg.effective_score if cfg.method != "sparsegpt" else "magnitude")
    if cfg.method == "sparsegpt":
        Wn, mask = sparsegpt_prune(W, stats.hessian, sparsity, cfg.nm, cfg.blocksize, cfg.percdamp)
    elif cfg.weight_update == "iterative":
        def block_score(Wb, cols):
            sub = LayerStats(input_sq_mean=None if stats.input_sq_mean is None else stats.input_sq_mean[cols],
                             tokens=stats.tokens)
            return check_score_output(score(Wb, sub), Wb, "score")

        Wn, mask = sparsegpt_prune(W, stats.hessian, sparsity, cfg.nm, cfg.blocksize, cfg.percdamp,
                                   mask_mode="score", score_fn=block_score)
    else:
        # a plugged-in score gets a copy: an in-place edit of W must not alter the model silently
        Wf = W.detach().float().clone() if score_fn is not None else W.float()
        s = check_score_output(score(Wf, stats if stats is not None else LayerStats()), W, "score")
        if cfg.method == "wanda-alpha":
            mask, info["alpha"] = alpha_mask(s, sparsity)
        else:
            mask = structure_mask(s, sparsity, cfg.effective_group, cfg.nm)
        if cfg.refine == "dsnot" and not skipped(name, cfg.dsnot_skip):
            new = dsnot(W, mask, stats, s, cfg.nm, cfg.dsnot_cycles, cfg.dsnot_threshold, cfg.dsnot_var_power)
            info["dsnot_swaps"] = int((new & ~mask).sum())
            mask = new
        if cfg.weight_update == "sequential":
            Wn, mask = sparsegpt_prune(W, stats.hessian, sparsity, cfg.nm, cfg.blocksize, cfg.percdamp,
                                       mask_mode="fixed", fixed_mask=mask)
        else:
            Wn = W.masked_fill(mask, 0)
    layer.weight.data = Wn.to(W.dtype)
    return info


@torch.no_grad()
def prune_model(model: nn.Module, cfg: RunConfig, calib_windows: torch.Tensor | None,
                score_fn=None, progress: bool = True) -> dict[str, Any]:
    """Prune `model` in place as `cfg` says; returns a report (sparsities and timings).

    `score_fn` (W, stats) -> score plugs in a custom score (overrides cfg.score)."""
    cfg.validate()
    if score_fn is not None and cfg.method == "sparsegpt":
        raise ValueError("a custom score chooses the mask of magnitude/wanda; sparsegpt chooses with its own OBS "
                         "criterion. For a custom score with SparseGPT's update use method='wanda' and "
                         "weight_update='sequential' or 'iterative'")
    check_model_for(cfg, model)
    t_start = time.perf_counter()
    device = next(model.parameters()).device
    blocks = find_blocks(model)
    need_calib = cfg.needs_calibration or (score_fn is not None and cfg.method != "dense")
    need_sq = need_calib and cfg.method != "sparsegpt"
    need_h = cfg.method == "sparsegpt" or cfg.weight_update != "none"
    timings = {"capture": 0.0, "statistics_forward": 0.0, "reforward": 0.0, "score_mask": 0.0}
    extra_info: dict[str, Any] = {}

    if cfg.method == "dense":
        return _report(model, cfg, timings, time.perf_counter() - t_start, extra_info)
    sparsity = [cfg.target_sparsity] * len(blocks)
    if cfg.allocation != "uniform":
        t = time.perf_counter()
        ratios = owl_outlier_ratios(model, cfg, calib_windows, progress)
        sizes = [sum(l.weight.numel() for l in find_linears(b).values()) for b in blocks]
        sparsity = block_sparsities(cfg.allocation, cfg.target_sparsity, len(blocks), ratios, cfg.owl_lambda, sizes)
        extra_info["allocation"] = {"method": cfg.allocation, "outlier_ratio": ratios, "block_sparsity": sparsity}
        timings["allocation"] = time.perf_counter() - t

    if need_calib:
        if calib_windows is None:
            raise ValueError(f"method {cfg.method!r} needs calibration windows")
        t = time.perf_counter()
        inps, extras = capture_block_inputs(model, calib_windows, cfg.batch_size)
        timings["capture"] = time.perf_counter() - t
        outs = torch.empty_like(inps)

    bar = tqdm(range(len(blocks)), desc=f"pruning ({cfg.method})", disable=not progress, leave=False)
    for bi in bar:
        block = blocks[bi]
        linears = find_linears(block)
        stats: dict[str, LayerStats | None] = {name: None for name in linears}
        if need_calib:
            hooks = {name: _StatsHook(layer, need_sq, need_h, cfg.refine == "dsnot") for name, layer in linears.items()}
            t = time.perf_counter()
            try:
                _run_block(block, inps, extras[bi], cfg.batch_size)
            finally:
                for h in hooks.values():
                    h.handle.remove()
            _sync(device)
            timings["statistics_forward"] += time.perf_counter() - t
            stats = {name: h.stats for name, h in hooks.items()}
        t = time.perf_counter()
        for name, layer in linears.items():
            info = prune_linear(layer, cfg, stats[name], score_fn, sparsity[bi], name)
            if info:
                extra_info.setdefault("per_linear", {})[f"{bi}.{name}"] = info
        _sync(device)
        timings["score_mask"] += time.perf_counter() - t
        del stats
        if need_calib and bi < len(blocks) - 1:
            t = time.perf_counter()
            _run_block(block, inps, extras[bi], cfg.batch_size, outs)
            _sync(device)
            timings["reforward"] += time.perf_counter() - t
            inps, outs = outs, inps
    return _report(model, cfg, timings, time.perf_counter() - t_start, extra_info)


@torch.no_grad()
def owl_outlier_ratios(model: nn.Module, cfg: RunConfig, calib_windows: torch.Tensor | None,
                       progress: bool = True) -> list[float]:
    """OWL's pass over the dense model: each block's outlier ratio of its Wanda scores."""
    if calib_windows is None:
        raise ValueError("allocation 'owl' measures outliers on calibration windows, but none were given")
    inps, extras = capture_block_inputs(model, calib_windows, cfg.batch_size)
    outs, ratios = torch.empty_like(inps), []
    for bi, block in enumerate(tqdm(find_blocks(model), desc="OWL outlier ratios", disable=not progress, leave=False)):
        linears = find_linears(block)
        hooks = {name: _StatsHook(layer, True, False) for name, layer in linears.items()}
        try:
            _run_block(block, inps, extras[bi], cfg.batch_size, outs)  # dense weights: stats and outputs at once
        finally:
            for h in hooks.values():
                h.handle.remove()
        ratios.append(outlier_ratio([wanda(layer.weight.data, hooks[n].stats) for n, layer in linears.items()], cfg.owl_m))
        inps, outs = outs, inps
    return ratios


def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """Fraction of exact zeros: overall (over the pruned Linears), per block, per Linear."""
    per_linear, per_block = {}, []
    total = zeros = 0
    for bi, block in enumerate(find_blocks(model)):
        bt = bz = 0
        for name, layer in find_linears(block).items():
            w = layer.weight
            z = int((w == 0).sum())
            per_linear[f"{bi}.{name}"] = round(z / w.numel(), 6)
            bt, bz = bt + w.numel(), bz + z
        per_block.append(round(bz / max(bt, 1), 6))
        total, zeros = total + bt, zeros + bz
    return {"overall": zeros / max(total, 1), "per_block": per_block, "per_linear": per_linear,
            "pruned_params": zeros, "prunable_params": total}


def _report(model, cfg, timings, total, extra_info) -> dict[str, Any]:
    return {
        "sparsity": sparsity_report(model),
        "seconds": {"total": total, **timings},
        **extra_info,
    }
