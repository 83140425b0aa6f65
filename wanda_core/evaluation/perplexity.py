"""Perplexity, as the paper's `eval_ppl`: non-overlapping windows of seqlen tokens (remainder
dropped), the mean next-token negative log-likelihood over every window, exponentiated.

    ppl = perplexity(model, windows)         # windows: (n, seqlen) token ids from data.eval_windows

A window whose loss is NaN or inf makes `perplexity` raise finite.NonFinite naming the window.
Zero-shot accuracy through lm-eval lives in zeroshot.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from wanda_core.prune.finite import NonFinite, check_rows


@torch.no_grad()
def window_nlls(model, windows: torch.Tensor, batch_size: int = 8, progress: bool = True) -> torch.Tensor:
    """Mean NLL (nats/token) of each window, predicting tokens 1..seqlen-1 from their prefixes."""
    device = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress, leave=False):
        ids = windows[i : i + batch_size].to(device)
        logits = model(input_ids=ids, use_cache=False).logits.float()
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        out.append(nll.mean(dim=1).cpu())
    return torch.cat(out)


def perplexity(model, windows: torch.Tensor, batch_size: int = 8, progress: bool = True) -> float:
    """exp(mean window NLL); a window whose loss is NaN or inf raises finite.NonFinite naming it
    (a diverged model, not a perplexity)."""
    nll = window_nlls(model, windows, batch_size, progress)
    check_rows(nll, "eval")
    try:
        return math.exp(nll.double().mean().item())
    except OverflowError:  # finite losses whose mean is beyond float range: no number either
        raise NonFinite({"stage": "eval", "window": int(nll.argmax()), "value": "inf"}) from None
