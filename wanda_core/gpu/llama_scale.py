"""Pruning at the paper's scale on one GPU: random LLaMA-shaped models pruned by the engine.

Two measurements the 135M model of the book cannot make (parts 2 and 4 of `make gpu`):

- `pruning_time`: a LLaMA-7B-shaped model (32 blocks, hidden 4096, MLP 11008, fp16) pruned by
  `engine.prune_model` with Wanda and with SparseGPT on random calibration tokens, as the paper's
  pruning-time table: the score-and-mask seconds of the whole model and the total prune time.
- `offload`: a LLaMA-30B-shaped model (about 65 GB in fp16) kept in CPU memory and pruned with
  block offload (`RunConfig(offload=True)`) under a device-memory cap of 24 GiB; the same model
  without offload is first shown not to fit under that cap.

    python -m wanda_core.gpu.llama_scale time --out results/pruning_time --budget-s 150
    python -m wanda_core.gpu.llama_scale offload --out results/offload --budget-s 140
    python -m wanda_core.gpu.llama_scale time --out /tmp/t --rehearse      # CPU, tiny shape, seconds

Weights are random normal (std 0.02, norms 1): timing does not depend on the values, and these
keep every activation finite. Calibration windows are random token ids. Each run first prunes a
one-block copy (a probe) to learn the cost of a block, then as many blocks as the time budget
allows; anything not measured in full is scaled from the measured blocks and windows, and the
record says which numbers are scaled and by how much. Records are rewritten atomically after each
step, so a part that runs out of time still leaves what it measured.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wanda_core.runs.config import RunConfig
from wanda_core.prune.engine import prune_model
from wanda_core.prune.blocks import find_blocks
from wanda_core.runs.records import atomic_write_json
from wanda_core.gpu.speedup.device import Budget, gpu_provenance

RECORD_KIND = "wanda_core.atscale"  # stored in every record: unchanged when the module moved
PAPER_WINDOWS, PAPER_SEQLEN = 128, 2048  # the paper's calibration set: 128 windows of 2048 tokens
# name: (hidden, intermediate, heads, blocks, vocab), LLaMA-1's published configurations
SHAPES = {
    "7B": (4096, 11008, 32, 32, 32000),
    "13B": (5120, 13824, 40, 40, 32000),
    "30B": (6656, 17920, 52, 60, 32000),
    "tiny": (64, 128, 4, 4, 256),  # the CPU rehearsal
}


class BudgetExceeded(RuntimeError):
    """Raised at the start of a block when the part's time budget is spent."""


def llama_config(shape: str, blocks: int | None = None, seqlen: int = PAPER_SEQLEN):
    from transformers import LlamaConfig

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
    h, i, heads, n, vocab = SHAPES[shape]
    return LlamaConfig(hidden_size=h, intermediate_size=i, num_attention_heads=heads, num_key_value_heads=heads,
                       num_hidden_layers=blocks or n, vocab_size=vocab, max_position_embeddings=max(seqlen, 2048),
                       rms_norm_eps=1e-6, tie_word_embeddings=False)


@torch.no_grad()
def fill_random_(model: nn.Module, seed: int = 0, gen_device: str | torch.device | None = None) -> nn.Module:
    """Norm weights 1, every other parameter normal(0, 0.02), drawn on `gen_device` (the GPU is far
    faster than the CPU at drawing 30 billion numbers) and copied into place."""
    gen_device = torch.device(gen_device or next(model.parameters()).device)
    g = torch.Generator(gen_device).manual_seed(seed)
    for name, p in model.named_parameters():
        if "norm" in name:
            p.fill_(1.0)
        else:
            p.copy_(torch.randn(p.shape, generator=g, device=gen_device, dtype=p.dtype).mul_(0.02))
    return model


def random_llama(shape: str, dtype: torch.dtype, device: str, seed: int = 0, blocks: int | None = None,
                 gen_device: str | None = None, seqlen: int = PAPER_SEQLEN) -> nn.Module:
    """A LLaMA-shaped `LlamaForCausalLM` with random weights, built without Hugging Face's slow init:
    laid out on the meta device, given uninitialised memory on `device`, then filled."""
    from transformers import LlamaForCausalLM

    cfg = llama_config(shape, blocks, seqlen)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg).to(dtype)
    model = model.to_empty(device=device).eval().requires_grad_(False)
    with torch.device(device):  # buffers are not parameters: rebuild the rotary tables for real
        model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)
    return fill_random_(model, seed, gen_device or device)


def random_windows(n: int, seqlen: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _keep_blocks(model: nn.Module, n: int) -> list[nn.Module]:
    """Make `model` run its first `n` blocks only (a view: the blocks are shared); returns all of them."""
    full = getattr(model, "_all_blocks", None) or list(find_blocks(model))
    model._all_blocks = full  # a plain list, so find_blocks never mistakes it for the model's blocks
    model.model.layers = nn.ModuleList(full[:n])
    model.config.num_hidden_layers = n
    return full


def _peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def prune_timed(model: nn.Module, cfg: RunConfig, windows: torch.Tensor, budget: Budget, n_blocks: int,
                seed: int = 0, refill: bool = True) -> dict[str, Any]:
    """Prune the first `n_blocks` blocks of `model` (from fresh random weights drawn on the device if
    `refill`); the engine's seconds, peak device memory, or the error (out of time, out of memory)."""
    full = _keep_blocks(model, n_blocks)
    if refill:
        fill_random_(model, seed, gen_device=cfg.device)
    dev = cfg.device
    _sync(dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def deadline(_mod, _args):
        if budget.over():
            raise BudgetExceeded(f"time budget of {budget.seconds:.0f} s spent")

    hooks = [b.register_forward_pre_hook(deadline) for b in find_blocks(model)]
    out: dict[str, Any] = dict(method=cfg.method, blocks=n_blocks, total_blocks=len(full), nsamples=len(windows),
                               seqlen=windows.shape[1], started_s=round(budget.elapsed(), 1))
    try:
        rep = prune_model(model, cfg, windows, progress=False)
        _sync(dev)
        out.update(seconds={k: round(v, 4) for k, v in rep["seconds"].items()},
                   sparsity=round(rep["sparsity"]["overall"], 6), error=None)
    except (BudgetExceeded, torch.OutOfMemoryError) as e:
        out.update(seconds=None, sparsity=None, error=f"{type(e).__name__}: {e}"[:300])
    finally:
        for h in hooks:
            h.remove()
        _keep_blocks(model, len(full))
    out["peak_device_gib"] = _peak_gib(dev)
    return out


def scale(run: dict[str, Any], windows: int = PAPER_WINDOWS) -> dict[str, Any]:
    """Whole-model, paper-setting estimates from a run on `blocks` blocks and `nsamples` windows.

    Score and mask do not depend on the number of windows (a Wanda norm or a SparseGPT Hessian is
    d_in or d_in^2 numbers however many tokens made it), so they scale with blocks only; the forward
    passes (and SparseGPT's Hessian updates inside them) scale with blocks and with windows."""
    s, kb, kw = run["seconds"], run["total_blocks"] / run["blocks"], windows / run["nsamples"]
    phases = ("capture", "statistics_forward", "score_mask", "reforward")
    other = max(s["total"] - sum(s[p] for p in phases), 0.0)
    return dict(block_factor=kb, window_factor=kw, score_mask_s=s["score_mask"] * kb,
                total_s=s["capture"] * kw + (s["statistics_forward"] + s["reforward"]) * kb * kw
                + (s["score_mask"] + other) * kb)


def _record(family: str, device: str, settings: dict, rehearsal: bool) -> dict[str, Any]:
    return dict(kind=RECORD_KIND, family=family, rehearsal=rehearsal, complete=False,
                provenance=gpu_provenance(device), settings=settings, runs=[])


def pruning_time(out: str | Path, shape: str = "7B", nsamples: int = 32, seqlen: int = PAPER_SEQLEN,
                 budget_s: float = 150.0, device: str = "cuda", dtype: torch.dtype = torch.float16,
                 methods: tuple[str, ...] = ("wanda", "sparsegpt"), seed: int = 0) -> Path:
    """Part 2: Wanda's and SparseGPT's pruning time on a LLaMA-shaped model; writes `out`/llama<shape>.json."""
    budget, path = Budget(budget_s), Path(out) / f"llama{shape.lower()}.json"
    settings = dict(shape=shape, dims=SHAPES[shape], dtype=str(dtype).removeprefix("torch."), nsamples=nsamples,
                    seqlen=seqlen, sparsity=0.5, structure="unstructured", methods=methods, budget_s=budget_s,
                    seed=seed, paper_setting=dict(windows=PAPER_WINDOWS, seqlen=PAPER_SEQLEN),
                    allow_tf32=torch.backends.cuda.matmul.allow_tf32, weights="random normal(0, 0.02), norms 1",
                    calibration="random token ids")
    rec = _record("pruning_time", device, settings, device == "cpu")
    t = time.monotonic()
    model = random_llama(shape, dtype, device, seed, seqlen=seqlen)
    rec["build_s"] = round(time.monotonic() - t, 2)
    windows = random_windows(nsamples, seqlen, SHAPES[shape][4], seed)
    atomic_write_json(path, rec)
    total_blocks = SHAPES[shape][3]
    for i, method in enumerate(methods):
        cfg = RunConfig(model=f"random-llama-{shape}", method=method, sparsity=0.5, nsamples=nsamples, seqlen=seqlen,
                        dtype=settings["dtype"], device=device, batch_size=8)
        probe = prune_timed(model, cfg, windows, budget, 1, seed)
        rec["runs"].append({**probe, "phase": "probe"})
        atomic_write_json(path, rec)
        if probe["error"]:
            continue
        # the blocks that fit this method's share of what is left (the later methods keep theirs)
        per_block = probe["seconds"]["total"] - probe["seconds"]["capture"]
        share = budget.left() / (len(methods) - i) * 0.85 - probe["seconds"]["capture"]
        n = max(1, min(total_blocks, int(share / max(per_block, 1e-6))))
        run = prune_timed(model, cfg, windows, budget, n, seed)
        if not run["error"]:
            run["scaled"] = scale(run)
        rec["runs"].append({**run, "phase": "model"})
        atomic_write_json(path, rec)
    rec.update(complete=True, wall_s=round(budget.elapsed(), 1))
    return atomic_write_json(path, rec)


def _cap_fraction(device: str, cap_gib: float) -> float | None:
    """Limit this process's device memory to `cap_gib` (CUDA only; the rehearsal simulates the cap)."""
    if not device.startswith("cuda"):
        return None
    frac = min(1.0, cap_gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    torch.cuda.set_per_process_memory_fraction(frac)
    return frac


def try_whole_model(model: nn.Module, device: str, cap_gib: float) -> dict[str, Any]:
    """What the engine without offload needs first: the whole model on the device. Under the cap
    this fails on a GPU (out of memory); on the CPU rehearsal the cap is simulated by counting bytes."""
    need = sum(p.numel() * p.element_size() for p in model.parameters())
    t = time.monotonic()
    try:
        if not device.startswith("cuda"):
            if need > cap_gib * 2**30:
                raise torch.OutOfMemoryError(f"simulated cap: {need / 2**30:.3g} GiB > {cap_gib:.3g} GiB")
        else:
            model.to(device)
        fits, err = True, None
    except torch.OutOfMemoryError as e:
        fits, err = False, f"OutOfMemoryError: {str(e).splitlines()[0]}"[:300]
    finally:
        model.to("cpu")
        _sync(device)
    return dict(model_gib=need / 2**30, cap_gib=cap_gib, fits=fits, error=err, seconds=round(time.monotonic() - t, 2),
                simulated=not device.startswith("cuda"))


def offload(out: str | Path, shape: str = "30B", cap_gib: float = 24.0, nsamples: int = 32,
            seqlen: int = PAPER_SEQLEN, budget_s: float = 140.0, device: str = "cuda", method: str = "wanda",
            dtype: torch.dtype = torch.float16, seed: int = 0) -> Path:
    """Part 4: prune a model larger than the capped device memory with block offload; `out`/llama<shape>.json."""
    budget, path = Budget(budget_s), Path(out) / f"llama{shape.lower()}.json"
    frac = _cap_fraction(device, cap_gib)
    has_offload = "offload" in {f.name for f in dataclasses.fields(RunConfig)}
    settings = dict(shape=shape, dims=SHAPES[shape], dtype=str(dtype).removeprefix("torch."), cap_gib=cap_gib,
                    memory_fraction=frac, method=method, nsamples=nsamples, seqlen=seqlen, budget_s=budget_s,
                    seed=seed, weights="random normal(0, 0.02), norms 1, kept in CPU memory",
                    calibration="random token ids")
    rec = _record("offload", device, settings, device == "cpu")
    t = time.monotonic()
    model = random_llama(shape, dtype, "cpu", seed, gen_device=device, seqlen=seqlen)
    rec["build_s"] = round(time.monotonic() - t, 2)
    rec["without_offload"] = try_whole_model(model, device, cap_gib)
    atomic_write_json(path, rec)
    windows = random_windows(nsamples, seqlen, SHAPES[shape][4], seed)
    if not has_offload:
        rec["runs"].append(dict(method=method, offload=True, error="RunConfig has no field 'offload': block offload "
                                "(the engine branch) is not in this checkout", seconds=None, peak_device_gib=None))
    else:
        cfg = RunConfig(model=f"random-llama-{shape}", method=method, sparsity=0.5, nsamples=nsamples, seqlen=seqlen,
                        dtype=settings["dtype"], device=device, batch_size=8, offload=True)
        run = prune_timed(model, cfg, windows, budget, SHAPES[shape][3], seed, refill=False)  # freshly built
        rec["runs"].append({**run, "offload": True, "phase": "model"})
    rec.update(complete=True, wall_s=round(budget.elapsed(), 1))
    return atomic_write_json(path, rec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m wanda_core.gpu.llama_scale", description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=("time", "offload"), help="time: part 2 (7B shape); offload: part 4 (30B shape)")
    ap.add_argument("--out", required=True, help="folder for the JSON record")
    ap.add_argument("--shape", default=None, help=f"one of {', '.join(SHAPES)} (default 7B / 30B)")
    ap.add_argument("--nsamples", type=int, default=32, help="random calibration windows (paper 128; scaled openly)")
    ap.add_argument("--seqlen", type=int, default=PAPER_SEQLEN)
    ap.add_argument("--cap-gib", type=float, default=24.0, help="offload: device memory cap")
    ap.add_argument("--budget-s", type=float, default=150.0, help="stop starting new work after this many seconds")
    ap.add_argument("--rehearse", action="store_true", help="CPU, tiny shape, 4 windows of 32 tokens: seconds")
    a = ap.parse_args(argv)
    if a.rehearse:
        kw = dict(shape="tiny", nsamples=4, seqlen=32, device="cpu", dtype=torch.float32)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU: run with --rehearse to exercise this on the CPU")
        kw = dict(shape=a.shape or ("7B" if a.part == "time" else "30B"), nsamples=a.nsamples, seqlen=a.seqlen)
    if a.part == "time":
        p = pruning_time(a.out, budget_s=a.budget_s, **kw)
    else:
        cap = a.cap_gib if not a.rehearse else 0.5 / 1024  # the tiny model (0.7 MiB) overflows a 0.5 MiB cap
        p = offload(a.out, cap_gib=cap, budget_s=a.budget_s, **kw)
    print(f"{a.part}: {p}")


if __name__ == "__main__":
    main()
