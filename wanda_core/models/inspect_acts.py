"""Look inside a model: the input-activation norms ||X_j||_2 that Wanda multiplies |W_ij| by.

    from wanda_core.models.inspect_acts import activation_norms, pick_layers
    norms = activation_norms(model, windows, layers=["15.self_attn.q_proj", "15.mlp.down_proj"])
    norms["15.self_attn.q_proj"]       # (in_features,) float32: ||X_j||_2 over every token

Read-only: forward hooks gather the statistics, nothing in the model changes. Layer names are
"<block index>.<name inside the block>", the names the run records use for per-layer sparsity.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from wanda_core.prune.blocks import find_blocks, find_linears


def linear_names(model: nn.Module) -> list[str]:
    """Every prunable Linear of the decoder blocks, as "<block>.<name>" in forward order."""
    return [f"{bi}.{name}" for bi, b in enumerate(find_blocks(model)) for name in find_linears(b)]


def pick_layers(model: nn.Module, blocks: Iterable[int] | None = None) -> list[str]:
    """Two telling layers per chosen block: the attention's query input (the normalised residual
    stream) and the MLP's output projection input (after the gated nonlinearity).

    `blocks` defaults to the middle and the last block. Works for LLaMA-style names (q_proj,
    down_proj) and falls back to the block's first and last Linear for other architectures."""
    all_blocks = find_blocks(model)
    n = len(all_blocks)
    blocks = sorted({n // 2, n - 1}) if blocks is None else [b % n for b in blocks]
    out = []
    for bi in blocks:
        names = list(find_linears(all_blocks[bi]))
        first = next((x for x in names if x.endswith(("q_proj", "query_key_value", "c_attn"))), names[0])
        last = next((x for x in names if x.endswith(("down_proj", "fc2", "dense_4h_to_h", "c_proj"))), names[-1])
        out += [f"{bi}.{first}", f"{bi}.{last}"] if first != last else [f"{bi}.{first}"]
    return out


@torch.no_grad()
def activation_norms(model: nn.Module, windows: torch.Tensor, layers: Iterable[str] | Callable[[str], bool] | None = None,
                     batch_size: int = 8) -> dict[str, torch.Tensor]:
    """||X_j||_2 for every input channel j of the chosen Linear layers of the *dense* model.

    `windows`: (n, seqlen) token ids; the norm runs over all n * seqlen tokens (the paper's X is
    the layer input for every calibration token). `layers`: names from `linear_names`, a filter
    function on such names, or None for all. Returns {name: float32 tensor (in_features,)} on CPU.
    Unlike the pruning engine this runs the whole unpruned model, so every layer sees the
    dense model's activations."""
    names = linear_names(model)
    if layers is None:
        chosen = names
    elif callable(layers):
        chosen = [n for n in names if layers(n)]
    else:
        chosen = list(layers)
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {', '.join(unknown)}; valid names look like {names[0]!r} "
                             f"(see linear_names(model))")
    if not chosen:
        raise ValueError("no layers chosen")
    if windows.dim() != 2 or windows.shape[0] < 1:
        raise ValueError(f"windows must be a (n, seqlen) tensor of token ids, got shape {tuple(windows.shape)}")

    blocks = find_blocks(model)
    sq: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name):
        def hook(_mod, inp, _out):
            x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
            s = x.pow(2).sum(0)
            sq[name] = s if name not in sq else sq[name] + s
        return hook

    for name in chosen:
        bi, lname = name.split(".", 1)
        layer = find_linears(blocks[int(bi)])[lname]
        handles.append(layer.register_forward_hook(hook_for(name)))
    device = next(model.parameters()).device
    try:
        for i in range(0, len(windows), batch_size):
            model(input_ids=windows[i : i + batch_size].to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return {name: sq[name].sqrt().float().cpu() for name in chosen}


def outlier_summary(norms: dict[str, torch.Tensor], factor: float = 10.0, top: int = 5):
    """One row per layer: channels, median and max norm, max/median, how many channels exceed
    `factor` x the median, and the `top` largest channels (index: norm)."""
    import pandas as pd

    rows = []
    for name, v in norms.items():
        v = v.float()
        med = float(v.median())
        order = torch.argsort(v, descending=True)[:top]
        rows.append({
            "layer": name,
            "channels": int(v.numel()),
            "median ||X_j||": med,
            "max ||X_j||": float(v.max()),
            "max / median": float(v.max()) / med if med > 0 else float("nan"),
            f"channels > {factor:g}x median": int((v > factor * med).sum()) if med > 0 else 0,
            "largest channels": ", ".join(str(int(j)) for j in order),
        })
    return pd.DataFrame(rows)


__all__ = ["activation_norms", "linear_names", "pick_layers", "outlier_summary"]
