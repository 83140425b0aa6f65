"""Why Wanda works (chapter 1): a four-weight example by hand, and the large input channels of the
profile's dense model that make the input norm matter.

    from wanda_core.study.experiments import outliers
    ex, err = outliers.toy_example()       # one row of 4 weights at 50%: scores, masks, output error
    norms = outliers.activation_norms(P)   # ||X_j||_2 of every input channel of the chosen layers
    outliers.recurring_channels(norms)     # the channels that stand out in block after block
    outliers.mask_effect(P, norms)         # magnitude and Wanda masks on those real layers

Scores and masks come from wanda_core.prune.scores and wanda_core.prune.masks, the functions the engine calls;
the activation norms from forward hooks on the dense model (nothing is pruned).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from wanda_core.prune.masks import unstructured_mask
from wanda_core.prune.scores import LayerStats, magnitude, wanda


def toy_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One output row W = [4, -3, 2, -1] with input-channel norms [1, 2, 8, 1] over 8 tokens
    (orthogonal columns, so the output error is the root of the summed squared removed scores),
    pruned to 50% per row by each score. Returns (one row per weight, one row per method)."""
    W = torch.tensor([[4.0, -3.0, 2.0, -1.0]])
    q, _ = torch.linalg.qr(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
    X = q * torch.tensor([1.0, 2.0, 8.0, 1.0])
    stats = LayerStats(input_sq_mean=X.pow(2).mean(0), tokens=X.shape[0])
    masks = {"magnitude": unstructured_mask(magnitude(W), 0.5, "row"), "wanda": unstructured_mask(wanda(W, stats), 0.5, "row")}
    weights = pd.DataFrame({"input": range(4), "weight": W[0].tolist(), "x_norm": X.norm(dim=0).tolist(),
                            "magnitude_score": W.abs()[0].tolist(), "wanda_score": (W.abs() * X.norm(dim=0))[0].tolist(),
                            **{k: ["pruned" if x else "kept" for x in m[0].tolist()] for k, m in masks.items()}})
    y = float((X @ W.T).norm())
    errors = pd.DataFrame([{"method": k, "error": float((X @ (W * m).T).norm()), "output_norm": y} for k, m in masks.items()])
    errors["relative_error"] = errors["error"] / y
    return weights, errors


def _dense(P):
    from wanda_core.runs.runner import get_model

    cfg = P.config(method="dense")
    return cfg, *get_model(cfg)


def activation_norms(P) -> pd.DataFrame:
    """Long table: layer, block, linear, channel, norm, `picked` (the two telling layers of the middle
    and last block; the attention input is kept for every block) and the calibration `tokens`."""
    from wanda_core.models import data
    from wanda_core.models.inspect_acts import activation_norms as norms_of, pick_layers

    cfg, model, tok, _ = _dense(P)
    windows, _ = data.calibration_windows(tok, cfg.calib, cfg.nsamples, cfg.seqlen, cfg.seed)
    picked = pick_layers(model)
    attn = picked[0].split(".", 1)[1]
    norms = norms_of(model, windows, lambda n: n in picked or n.split(".", 1)[1] == attn, batch_size=cfg.batch_size)
    return pd.DataFrame([{"layer": n, "block": int(n.split(".", 1)[0]), "linear": n.split(".", 1)[1], "channel": j,
                          "norm": float(x), "picked": n in picked, "tokens": int(windows.numel())}
                         for n, v in norms.items() for j, x in enumerate(v.tolist())])


def summary(norms: pd.DataFrame, factor: float = 10.0) -> pd.DataFrame:
    """Per picked layer: channels, median and max norm, how many channels exceed `factor` x the median."""
    from wanda_core.models.inspect_acts import outlier_summary

    picked = norms[norms["picked"]]
    return outlier_summary({n: torch.tensor(d.sort_values("channel")["norm"].to_numpy())
                            for n, d in picked.groupby("layer", sort=False)}, factor=factor)


def attention_matrix(norms: pd.DataFrame) -> tuple[str, np.ndarray]:
    """(name of the attention input, blocks x channels array of its norms) from `activation_norms`."""
    attn = norms.loc[norms["picked"], "linear"].iloc[0]
    d = norms[norms["linear"] == attn]
    return attn, np.clip(d.pivot(index="block", columns="channel", values="norm").to_numpy(), np.finfo(np.float32).tiny, None)


def recurring_channels(norms: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """The channels most often among the `top` largest inputs of the attention input, over all blocks."""
    _, M = attention_matrix(norms)
    med = np.median(M, axis=1)
    counts = pd.Series(np.argsort(M, axis=1)[:, ::-1][:, :top].ravel()).value_counts().head(top)
    return pd.DataFrame({"channel": counts.index, "blocks": counts.values, "of_blocks": M.shape[0],
                         "median_ratio": [float(np.median(M[:, j] / med)) for j in counts.index]})


def mask_effect(P, norms: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Per picked layer: both masks at 50% per output row on the real weights (only the score differs),
    the share of weights where they disagree, and the share each prunes of the weights reading the
    `top` largest input channels."""
    from wanda_core.prune.blocks import find_blocks, find_linears

    _, model, _, _ = _dense(P)
    blocks, rows = find_blocks(model), []
    for name, d in norms[norms["picked"]].groupby("layer", sort=False):
        W = find_linears(blocks[int(d["block"].iloc[0])])[d["linear"].iloc[0]].weight.detach().float().cpu()
        v = torch.tensor(d.sort_values("channel")["norm"].to_numpy(), dtype=torch.float32)
        n = int(d["tokens"].iloc[0])
        mag = unstructured_mask(magnitude(W), 0.5, "row")
        wan = unstructured_mask(wanda(W, LayerStats(input_sq_mean=v**2 / n, tokens=n)), 0.5, "row")
        big = torch.argsort(v, descending=True)[:top]
        rows.append({"layer": name, "weights": W.numel(), "disagree": float((mag != wan).float().mean()),
                     "magnitude_top": float(mag[:, big].float().mean()), "wanda_top": float(wan[:, big].float().mean())})
    return pd.DataFrame(rows)
