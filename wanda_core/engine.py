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
OWL's allocation (allocation.py) adds one pass over the dense model before step 2 to give each
block its own sparsity; DSnoT (refine.py) adjusts each Linear's mask once it is chosen.

Devices: a model on one device prunes there. `cfg.offload` keeps the weights in CPU memory and
brings one block at a time to `cfg.device` (activations stay there, or in pinned CPU memory when
they do not fit). A model split over devices by accelerate's device_map="auto" prunes each block
where it lives; the activations follow the blocks.

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
from .finite import NonFinite, check, check_rows
from .masks import alpha_mask, check_nm, structure_mask
from .models import find_blocks, find_linears
from .placement import activation_home, block_device, move_block, to_device
from .refine import accumulate_moments, dsnot, skipped
from .scores import LayerStats, check_score_output, get_score, wanda
from .sparsegpt import inverse_hessian_cholesky, sparsegpt_prune

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


def needs_calibration(cfg: RunConfig, score_fn=None) -> bool:
    """Does this prune read calibration data? The config says (RunConfig.needs_calibration), except
    that a plugged-in score may read the statistics whatever the method (the one place that decides)."""
    return cfg.method != "dense" and (cfg.needs_calibration or score_fn is not None)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def capture_block_inputs(model: nn.Module, windows: torch.Tensor, batch_size: int):
    """(inputs of block 0 for every window, per-block (args, kwargs) for a batch of one)."""
    blocks = find_blocks(model)
    emb = getattr(model, "get_input_embeddings", None)  # under a device_map: where the ids go in
    device = emb().weight.device if emb is not None else next(model.parameters()).device
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
    # batch size 1 and broadcast over any batch. The blocks are stood in for by a stub that passes
    # its input through, so this costs no block computation (an offloaded model never runs on CPU).
    per_block: list[Any] = [None] * len(blocks)

    def stub(idx):
        def forward(*args, **kwargs):
            per_block[idx] = (args[1:], {k: v for k, v in kwargs.items() if k != "hidden_states"})
            if idx == len(blocks) - 1:
                raise _Stop
            return args[0] if args else kwargs["hidden_states"]

        return forward

    saved = [b.__dict__.get("forward") for b in blocks]  # accelerate's hooks wrap forward per instance
    try:
        for i, b in enumerate(blocks):
            b.forward = stub(i)
        model(input_ids=windows[:1].to(device), use_cache=False)
    except _Stop:
        pass
    finally:
        for b, f in zip(blocks, saved):
            if f is None:
                del b.forward
            else:
                b.forward = f
    return torch.cat(inps), per_block


def _run_block(block, inps: torch.Tensor, extra, batch_size: int, out: torch.Tensor | None = None):
    """The block over all windows, a batch at a time; inputs and arguments go to the block's device.
    Without `out` (a statistics pass) a hook may end a batch early with _Stop."""
    dev = block_device(block)
    rest, kw = to_device(extra, dev)
    for i in range(0, len(inps), batch_size):
        try:
            o = block(inps[i : i + batch_size].to(dev, non_blocking=True), *rest, **kw)
        except _Stop:
            if out is not None:
                raise
            continue
        o = o[0] if isinstance(o, (tuple, list)) else o
        if out is not None:
            out[i : i + batch_size].copy_(o, non_blocking=True)
    return out


class _BlockStats:
    """Input statistics of a block's Linears, gathered once per distinct input tensor: Linears fed
    the very same tensor (q/k/v, gate/up) share one accumulator (float32 running means, so long
    calibration sets never overflow): Wanda's mean x_j^2 and/or SparseGPT's H = 2/n sum x x^T, and
    DSnoT's per-window moments when `need_moments`.

    `stop_block`: the hooks read each Linear's input before it runs, so once the first batch through
    this block has shown which Linear runs last, later batches end at its input (_Stop): its matrix
    product and whatever follows it (a quarter of a Llama block's flops: down_proj) are never needed
    for statistics. Only for passes whose outputs are discarded."""

    def __init__(self, linears: dict[str, nn.Linear], need_sq: bool, need_h: bool, need_moments: bool = False,
                 stop_block: nn.Module | None = None):
        self.need_sq, self.need_h, self.need_moments = need_sq, need_h, need_moments
        self.stats: dict[str, LayerStats] = {}
        self.follows: dict[str, bool] = {}  # True: reads the input of the Linear called just before
        self._last: tuple[torch.Tensor, LayerStats] | None = None
        self._called_last: str | None = None  # the Linear called most recently
        self._calls: dict[str, int] = {}  # calls per Linear in the first batch
        self._stop_at: str | None = None  # the last Linear of a batch, known once a batch has run
        self.handles = [layer.register_forward_pre_hook(self._hook(name)) for name, layer in linears.items()]
        if stop_block is not None:
            self.handles.append(stop_block.register_forward_pre_hook(self._batch_begins))

    def _batch_begins(self, _mod, _args):
        # a batch has run through: its last Linear is where to stop, unless some Linear was called
        # twice in it (a shared module: its first call would end the pass too early)
        if self._called_last is not None and self._stop_at is None and set(self._calls.values()) == {1}:
            self._stop_at = self._called_last

    def _hook(self, name: str):
        def hook(_mod, inp):
            x = inp[0]
            self._called_last = name
            if self._stop_at is None:
                self._calls[name] = self._calls.get(name, 0) + 1
            follows = self._last is not None and x is self._last[0]
            if self.follows.setdefault(name, follows) != follows:
                raise RuntimeError(f"{name} shared its input with the previous Linear in one batch but not another")
            if follows:
                self.stats[name] = self._last[1]
            else:
                if name not in self.stats:
                    self.stats[name] = self._new(x)
                self._accumulate(self.stats[name], x)
                self._last = (x, self.stats[name])  # holding x keeps its identity unique during the pass
            if name == self._stop_at:
                self._last = None
                raise _Stop
        return hook

    def _new(self, x: torch.Tensor) -> LayerStats:
        n_in, dev = x.shape[-1], x.device
        st = LayerStats()
        if self.need_sq:
            st.input_sq_mean = torch.zeros(n_in, dtype=torch.float32, device=dev)
        if self.need_h:
            st.hessian = torch.zeros(n_in, n_in, dtype=torch.float32, device=dev)
        return st

    def _accumulate(self, st: LayerStats, x: torch.Tensor) -> None:
        if self.need_moments:  # DSnoT's per-window moments need the window axis
            accumulate_moments(st, x)
        x = x.detach().reshape(-1, x.shape[-1]).float()  # no copy in float32
        n, t = st.tokens, x.shape[0]
        keep = n / (n + t)
        if self.need_sq:
            st.input_sq_mean.mul_(keep).add_(x.pow(2).sum(0), alpha=1 / (n + t))
        if self.need_h:
            _add_gram_upper(st.hessian, x, 2 / (n + t), keep)
        st.tokens = n + t

    def close(self, mirror: bool = True) -> dict[str, LayerStats]:
        """The statistics per Linear. `mirror=False` leaves each Hessian's lower triangle as it is
        (not the Hessian's): for SparseGPT, whose inverse_hessian_cholesky reads only the upper one."""
        for h in self.handles:
            h.remove()
        self._last = None
        if self.need_h and mirror:  # only the upper block triangle was accumulated: mirror it, once per input
            for st in {id(st): st for st in self.stats.values()}.values():
                st.hessian.copy_(st.hessian.triu() + st.hessian.triu(1).t())
        return self.stats


def _add_gram_upper(H: torch.Tensor, x: torch.Tensor, alpha: float, beta: float = 1.0, parts: int = 4) -> None:
    """H = beta H + alpha x^T x on the upper block triangle only (row blocks against the columns
    from their diagonal on): 5/8 of the multiply-adds of the full product for 4 parts, and beta
    applied inside the same products. Only the upper triangle is ever read (BlockStats.close
    mirrors it where a caller may read the whole matrix). Tried, not kept: 8 parts (no faster: the
    products get thinner); scipy's ssyrk (half the multiply-adds, but its OpenBLAS threads fight
    torch's for the 2 cores: slower in the engine)."""
    d = x.shape[1]
    step = -(-d // parts)
    xt = x.t()
    for i in range(0, d, step):
        H[i : i + step, i:].addmm_(xt[i : i + step], x[:, i:], beta=beta, alpha=alpha)


def prune_linear(layer: nn.Linear, cfg: RunConfig, stats: LayerStats | None, score_fn=None,
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


def prune_sparsegpt_stacked(layers: list[nn.Linear], cfg: RunConfig, stats: LayerStats, sparsity: float) -> None:
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
def prune_model(model: nn.Module, cfg: RunConfig, calib_windows: torch.Tensor | None,
                score_fn=None, progress: bool = True) -> dict[str, Any]:
    """Prune `model` in place as `cfg` says; returns a report (sparsities, timings, peak memory).

    `score_fn` (W, stats) -> score plugs in a custom score (overrides cfg.score)."""
    cfg.validate()
    if score_fn is not None and cfg.method == "sparsegpt":
        raise ValueError("a custom score chooses the mask of magnitude/wanda; sparsegpt chooses with its own OBS "
                         "criterion. For a custom score with SparseGPT's update use method='wanda' and "
                         "weight_update='sequential' or 'iterative'")
    check_model_for(cfg, model)
    t_start = time.perf_counter()
    offload = cfg.offload
    device = torch.device(cfg.device) if offload else block_device(find_blocks(model)[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    blocks = find_blocks(model)
    need_calib = needs_calibration(cfg, score_fn)
    need_sq = need_calib and cfg.method != "sparsegpt"
    need_h = cfg.method == "sparsegpt" or cfg.weight_update != "none"
    timings = {"capture": 0.0, "statistics_forward": 0.0, "reforward": 0.0, "score_mask": 0.0}
    extra_info: dict[str, Any] = {}

    if cfg.method == "dense":
        return _report(model, cfg, timings, time.perf_counter() - t_start, extra_info, device)
    sparsity = [cfg.target_sparsity] * len(blocks)
    if cfg.allocation != "uniform":
        t = time.perf_counter()
        ratios = owl_outlier_ratios(model, cfg, calib_windows, progress)
        sizes = [sum(lin.weight.numel() for lin in find_linears(b).values()) for b in blocks]
        sparsity = block_sparsities(cfg.allocation, cfg.target_sparsity, len(blocks), ratios, cfg.owl_lambda, sizes)
        extra_info["allocation"] = {"method": cfg.allocation, "outlier_ratio": ratios, "block_sparsity": sparsity}
        timings["allocation"] = time.perf_counter() - t

    if need_calib:
        if calib_windows is None:
            raise ValueError(f"method {cfg.method!r} needs calibration windows")
        t = time.perf_counter()
        inps, extras = capture_block_inputs(model, calib_windows, cfg.batch_size)
        home = activation_home(inps, device) if offload else inps.device
        inps = inps.pin_memory() if home == "pinned" else inps.to(home)
        outs = torch.empty_like(inps)  # the two buffers swap roles block after block
        outs = outs.pin_memory() if home == "pinned" else outs
        timings["capture"] = time.perf_counter() - t

    bar = tqdm(range(len(blocks)), desc=f"pruning ({cfg.method})", disable=not progress, leave=False)
    for bi in bar:
        block = blocks[bi]
        back = move_block(block, device) if offload else None
        if need_calib and home != "pinned" and inps.device != block_device(block):  # device_map: inputs follow
            inps, outs = inps.to(block_device(block)), outs.to(block_device(block))
        linears = find_linears(block)
        stats: dict[str, LayerStats | None] = {name: None for name in linears}
        if need_calib:
            collector = _BlockStats(linears, need_sq, need_h, cfg.refine == "dsnot", stop_block=block)
            t = time.perf_counter()
            try:
                _run_block(block, inps, extras[bi], cfg.batch_size)
            finally:
                stats = collector.close(mirror=cfg.method != "sparsegpt")  # custom scores may read stats.hessian
            _sync(block_device(block))
            timings["statistics_forward"] += time.perf_counter() - t
            for names in _by_input(stats):  # NaN/inf in what the block saw: stop here, named
                check(stats[names[0]].input_sq_mean, "statistics", block=bi, linear=names[0])
                check(stats[names[0]].hessian, "statistics", block=bi, linear=names[0])
        t = time.perf_counter()
        try:
            if cfg.method == "sparsegpt":  # Linears of one input (q/k/v, gate/up) in one column loop
                for names in _by_input(stats):
                    prune_sparsegpt_stacked([linears[n] for n in names], cfg, stats[names[0]], sparsity[bi])
            else:
                hinv_cache: dict = {}
                for name, layer in linears.items():
                    info = prune_linear(layer, cfg, stats.pop(name), score_fn, sparsity[bi], hinv_cache, name)
                    if info:
                        extra_info.setdefault("per_linear", {})[f"{bi}.{name}"] = info
                del hinv_cache
            for name, layer in linears.items():
                check(layer.weight, "pruned", block=bi, linear=name)
        except NonFinite as e:
            e.place.setdefault("block", bi)
            raise
        del stats
        _sync(block_device(block))
        timings["score_mask"] += time.perf_counter() - t
        if need_calib and bi < len(blocks) - 1:
            t = time.perf_counter()
            _run_block(block, inps, extras[bi], cfg.batch_size, outs)
            _sync(block_device(block))
            timings["reforward"] += time.perf_counter() - t
            check_rows(outs, "block_output", block=bi)
            inps, outs = outs, inps
        if back is not None:
            back()
    return _report(model, cfg, timings, time.perf_counter() - t_start, extra_info, device)


@torch.no_grad()
def owl_outlier_ratios(model: nn.Module, cfg: RunConfig, calib_windows: torch.Tensor | None,
                       progress: bool = True) -> list[float]:
    """OWL's pass over the dense model: each block's outlier ratio of its Wanda scores."""
    if calib_windows is None:
        raise ValueError("allocation 'owl' measures outliers on calibration windows, but none were given")
    inps, extras = capture_block_inputs(model, calib_windows, cfg.batch_size)
    outs, ratios = torch.empty_like(inps), []
    for bi, block in enumerate(tqdm(find_blocks(model), desc="OWL outlier ratios", disable=not progress, leave=False)):
        back = move_block(block, torch.device(cfg.device)) if cfg.offload else None
        linears = find_linears(block)
        collector = _BlockStats(linears, True, False)
        try:
            _run_block(block, inps, extras[bi], cfg.batch_size, outs)  # dense weights: stats and outputs at once
        finally:
            stats = collector.close()
        ratios.append(outlier_ratio([wanda(layer.weight.data, stats[n]) for n, layer in linears.items()], cfg.owl_m))
        inps, outs = outs, inps
        if back is not None:
            back()
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


def _report(model, cfg, timings, total, extra_info, device) -> dict[str, Any]:
    rep = {"sparsity": sparsity_report(model), "seconds": {"total": total, **timings}, **extra_info}
    if device.type == "cuda":  # the prune's own peak on the device (the run record keeps the run's)
        rep["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return rep
