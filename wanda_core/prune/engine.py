"""The engine: layer-by-layer pruning, as in the official Wanda code.

1. Capture what block 0 receives for every calibration window (the embeddings), and the extra
   arguments each block is called with (attention mask, position ids, rotary embeddings, which
   differ per block for sliding-window models such as Gemma-3).
2. For each block: run the calibration inputs through the *dense* block with one hook per distinct
   input tensor (q/k/v read one, gate/up another) gathering statistics (Wanda: running mean of
   x_j^2; SparseGPT: H = 2/n sum x x^T), prune every Linear of the block in place, then run the
   block again with the pruned weights: its outputs are the next block's inputs (so later blocks
   see the errors of earlier ones). Two passes per block are the floor; the rest is cheap. (The
   statistics pass ends at the last Linear's input: its product is not needed there.) SparseGPT
   prunes the Linears of one input (q/k/v, gate/up) in one column loop, stacked by rows.
Methods that need no calibration data (magnitude) skip the forward passes altogether.
The walk over the blocks and the activations are in blocks.py, the statistics hooks in stats.py.
OWL's allocation (allocation.py) adds one pass over the dense model before step 2 to give each
block its own sparsity; DSnoT (refine.py) adjusts each Linear's mask once it is chosen.

Devices: a model on one device prunes there. `cfg.offload` keeps the weights in CPU memory and
brings one block at a time to `cfg.device` (activations stay there, or in pinned CPU memory when
they do not fit). A model split over devices by accelerate's device_map="auto" prunes each block
where it lives; the activations follow the blocks.

    report = prune_model(model, cfg, calib_windows)   # cfg: a RunConfig (PruneSettings); windows: (n, seqlen) ids

Scores and masks are pure functions (scores.py, masks.py, sparsegpt.py); this file only moves
tensors around them. Embeddings and the LM head are never pruned (the paper's convention).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from wanda_core.prune.allocation import block_sparsities, outlier_ratio
from wanda_core.prune.finite import NonFinite, check, check_rows
from wanda_core.prune.blocks import Activations, find_blocks, find_linears, sync, walk_blocks
from wanda_core.prune.masks import alpha_mask, check_nm, structure_mask
from wanda_core.prune.placement import block_device
from wanda_core.prune.refine import dsnot, skipped
from wanda_core.prune.scores import LayerStats, check_score_output, get_score, wanda
from wanda_core.prune.settings import PruneSettings, needs_calibration
from wanda_core.prune.sparsegpt import inverse_hessian_cholesky, sparsegpt_prune
from wanda_core.prune.stats import BlockStats

log = logging.getLogger(__name__)


def check_model_for(cfg: PruneSettings, model: nn.Module) -> None:
    """Errors that depend on the model, raised before any long work (N:M widths)."""
    blocks = find_blocks(model)
    lin = find_linears(blocks[0])
    if not lin:
        raise ValueError(f"no nn.Linear layers inside the decoder blocks of {type(model).__name__}")
    if cfg.nm:
        for b in blocks:
            for name, layer in find_linears(b).items():
                check_nm(*cfg.nm, layer.in_features)


def prune_linear(layer: nn.Linear, cfg: PruneSettings, stats: LayerStats | None, score_fn=None,
                 sparsity: float | None = None, hinv_cache: dict | None = None, name: str = "") -> dict[str, Any]:
    """Prune one Linear in place (its weight tensor is overwritten, never replaced); returns what
    happened (alpha of wanda-alpha, DSnoT's swaps). `sparsity` overrides cfg's target for this layer
    (per-block allocations); `hinv_cache` shares SparseGPT's inverse Hessian between Linears of one
    input (the weight-update ablations); `name` (inside the block) tells DSnoT which Linears it skips."""
    sparsity = cfg.target_sparsity if sparsity is None else sparsity
    if cfg.method == "sparsegpt":  # the route prune_model takes for a group of one
        prune_sparsegpt_stacked([layer], cfg, stats, sparsity)
        return {}
    W = layer.weight.data
    info: dict[str, Any] = {}
    score = score_fn or get_score(cfg.effective_score)

    def hinv():
        if hinv_cache is None:
            return None
        key = id(stats)
        if key not in hinv_cache:
            hinv_cache[key] = inverse_hessian_cholesky(stats.hessian, cfg.percdamp)
        return hinv_cache[key]

    def update(mask_mode, **kw):  # SparseGPT's OBS update (its own mask, or a given/iterative one)
        return sparsegpt_prune(W, stats.hessian, sparsity, cfg.nm, cfg.blocksize, cfg.percdamp,
                               mask_mode=mask_mode, hinv=hinv(), **kw)

    if cfg.weight_update == "iterative":
        def block_score(Wb, cols):
            sub = LayerStats(input_sq_mean=None if stats.input_sq_mean is None else stats.input_sq_mean[cols],
                             tokens=stats.tokens)
            return check_score_output(score(Wb, sub), Wb, "score")

        Wn, _ = update("score", score_fn=block_score)
    else:
        # a plugged-in score gets a copy: an in-place edit of W must not alter the model silently
        Wf = W.detach().float().clone() if score_fn is not None else W.float()
        s = check_score_output(score(Wf, stats if stats is not None else LayerStats()), W, "score")
        del Wf
        if cfg.method == "wanda-alpha":
            mask, info["alpha"] = alpha_mask(s, sparsity)
        else:
            mask = structure_mask(s, sparsity, cfg.effective_group, cfg.nm, cfg.mask_rule)
        if cfg.refine == "dsnot" and not skipped(name, cfg.dsnot_skip):
            new = dsnot(W, mask, stats, s, cfg.nm, cfg.dsnot_cycles, cfg.dsnot_threshold, cfg.dsnot_var_power)
            info["dsnot_swaps"] = int((new & ~mask).sum())
            mask = new
        del s
        if cfg.weight_update == "sequential":
            Wn, _ = update("fixed", fixed_mask=mask)
        else:
            W.masked_fill_(mask, 0)
            return info
    W.copy_(Wn)
    return info


def _by_input(stats: dict[str, LayerStats]) -> list[list[str]]:
    """The block's Linears grouped by the statistics they share (one group per distinct input), in order."""
    groups: dict[int, list[str]] = {}
    for name, st in stats.items():
        groups.setdefault(id(st), []).append(name)
    return list(groups.values())


def prune_sparsegpt_stacked(layers: list[nn.Linear], cfg: PruneSettings, stats: LayerStats, sparsity: float) -> None:
    """SparseGPT on Linears that read one input, their weights stacked by rows: one inverse Hessian
    and one column loop instead of one each (every step is per row or, for the unstructured
    threshold, per Linear, so each gets what pruning it alone would give: tests/test_sparsegpt.py)."""
    ws = [layer.weight.data for layer in layers]
    rows = [w.shape[0] for w in ws]
    Wn, _ = sparsegpt_prune(ws[0] if len(ws) == 1 else torch.cat(ws), stats.hessian, sparsity, cfg.nm, cfg.blocksize,
                            cfg.percdamp, row_groups=rows)
    for w, part in zip(ws, Wn.split(rows)):
        w.copy_(part)


@torch.no_grad()
def prune_model(model: nn.Module, cfg: PruneSettings, calib_windows: torch.Tensor | None,
                score_fn=None, progress: bool = True) -> dict[str, Any]:
    """Prune `model` in place as `cfg` says; returns a report (sparsities, timings, peak memory).

    `score_fn` (W, stats) -> score plugs in a custom score (overrides cfg.score)."""
    _check(cfg, model, score_fn)
    t_start = time.perf_counter()
    device = torch.device(cfg.device) if cfg.offload else block_device(find_blocks(model)[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = {"capture": 0.0, "statistics_forward": 0.0, "reforward": 0.0, "score_mask": 0.0}
    extra_info: dict[str, Any] = {}
    if cfg.method == "dense":
        return _report(model, timings, time.perf_counter() - t_start, extra_info, device)

    sparsity = _block_sparsities(model, cfg, calib_windows, progress, timings, extra_info)
    acts = None
    if needs_calibration(cfg, score_fn):
        with _timed(timings, "capture"):
            acts = Activations(model, calib_windows, cfg.batch_size, device, cfg.offload)
    n_blocks = len(find_blocks(model))
    for bi, block in walk_blocks(model, device, cfg.offload, f"pruning ({cfg.method})", progress):
        linears = find_linears(block)
        stats: dict[str, LayerStats | None] = dict.fromkeys(linears)
        if acts is not None:
            acts.follow(block)
            with _timed(timings, "statistics_forward"):
                stats = _gather(acts, bi, block, linears, cfg)
            for names in _by_input(stats):  # NaN/inf in what the block saw: stop here, named
                check(stats[names[0]].input_sq_mean, "statistics", block=bi, linear=names[0])
                check(stats[names[0]].hessian, "statistics", block=bi, linear=names[0])
        with _timed(timings, "score_mask"):
            try:
                _prune_block(linears, stats, cfg, score_fn, sparsity[bi], bi, extra_info)
                for name, layer in linears.items():
                    check(layer.weight, "pruned", block=bi, linear=name)
            except NonFinite as e:
                e.place.setdefault("block", bi)
                raise
            sync(block_device(block))
        del stats  # the Hessians go before the next pass
        if acts is not None and bi < n_blocks - 1:
            with _timed(timings, "reforward"):
                acts.advance(bi, block)
            check_rows(acts.inps, "block_output", block=bi)  # the next block's inputs
    return _report(model, timings, time.perf_counter() - t_start, extra_info, device)


def _check(cfg: PruneSettings, model: nn.Module, score_fn) -> None:
    """Every error that input can cause, before any long work."""
    cfg.validate()
    if score_fn is not None and cfg.method == "sparsegpt":
        raise ValueError("a custom score chooses the mask of magnitude/wanda; sparsegpt chooses with its own OBS "
                         "criterion. For a custom score with SparseGPT's update use method='wanda' and "
                         "weight_update='sequential' or 'iterative'")
    check_model_for(cfg, model)


@contextmanager
def _timed(timings: dict[str, float], key: str):
    t = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t


def _block_sparsities(model, cfg: PruneSettings, calib_windows, progress, timings, extra_info) -> list[float]:
    """Each block's sparsity: the target everywhere, or OWL's outlier-weighted allocation."""
    blocks = find_blocks(model)
    if cfg.allocation == "uniform":
        return [cfg.target_sparsity] * len(blocks)
    with _timed(timings, "allocation"):
        ratios = owl_outlier_ratios(model, cfg, calib_windows, progress)
        sizes = [sum(lin.weight.numel() for lin in find_linears(b).values()) for b in blocks]
        sparsity = block_sparsities(cfg.allocation, cfg.target_sparsity, len(blocks), ratios, cfg.owl_lambda, sizes)
    extra_info["allocation"] = {"method": cfg.allocation, "outlier_ratio": ratios, "block_sparsity": sparsity}
    return sparsity


def _gather(acts: Activations, bi: int, block: nn.Module, linears, cfg: PruneSettings) -> dict[str, LayerStats]:
    """The statistics pass over one block: what the method reads of its Linears' inputs."""
    need_sq = cfg.method != "sparsegpt"
    need_h = cfg.method == "sparsegpt" or cfg.weight_update != "none"
    collector = BlockStats(linears, need_sq, need_h, cfg.refine == "dsnot", stop_block=block)
    try:
        acts.read(bi, block)
    finally:
        stats = collector.close(mirror=cfg.method != "sparsegpt")  # custom scores may read stats.hessian
    return stats


def _prune_block(linears, stats, cfg: PruneSettings, score_fn, sparsity: float, bi: int, extra_info) -> None:
    """Prune one block's Linears in place; what they report goes to extra_info["per_linear"]."""
    if cfg.method == "sparsegpt":  # Linears of one input (q/k/v, gate/up) in one column loop
        for names in _by_input(stats):
            prune_sparsegpt_stacked([linears[n] for n in names], cfg, stats[names[0]], sparsity)
        return
    hinv_cache: dict = {}
    for name, layer in linears.items():
        info = prune_linear(layer, cfg, stats.pop(name), score_fn, sparsity, hinv_cache, name)
        if info:
            extra_info.setdefault("per_linear", {})[f"{bi}.{name}"] = info


@torch.no_grad()
def owl_outlier_ratios(model: nn.Module, cfg: PruneSettings, calib_windows: torch.Tensor | None,
                       progress: bool = True) -> list[float]:
    """OWL's pass over the dense model: each block's outlier ratio of its Wanda scores."""
    if calib_windows is None:
        raise ValueError("allocation 'owl' measures outliers on calibration windows, but none were given")
    device = torch.device(cfg.device) if cfg.offload else block_device(find_blocks(model)[0])
    acts, ratios = Activations(model, calib_windows, cfg.batch_size, device, cfg.offload), []
    for bi, block in walk_blocks(model, device, cfg.offload, "OWL outlier ratios", progress):
        acts.follow(block)
        linears = find_linears(block)
        collector = BlockStats(linears, True, False)
        try:
            acts.advance(bi, block)  # dense weights: statistics and outputs in one pass
        finally:
            stats = collector.close()
        ratios.append(outlier_ratio([wanda(layer.weight.data, stats[n]) for n, layer in linears.items()], cfg.owl_m))
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


def _report(model, timings, total, extra_info, device) -> dict[str, Any]:
    rep = {"sparsity": sparsity_report(model), "seconds": {"total": total, **timings}, **extra_info}
    if device.type == "cuda":  # the prune's own peak on the device (the run record keeps the run's)
        rep["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return rep
