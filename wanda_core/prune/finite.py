"""Non-finite values (NaN, inf) caught where they first appear, and named by that place.

A NaN or inf in the loaded weights, the calibration statistics, a score, the pruned weights, a
block's output, a window's loss or a zero-shot log-probability is not an ordinary number: the
check that finds it raises NonFinite with the place (stage, block, Linear, window), the runner
records the result as diverged with that place, and the command line and the chapters say
"diverged" instead of printing a NaN.

    from wanda_core.finite import NonFinite, check
    check(W, "pruned", block=3, linear="mlp.down_proj")    # raises NonFinite if W holds NaN/inf
    try: ...
    except NonFinite as e: e.place   # {"stage": "pruned", "block": 3, "linear": "mlp.down_proj", "value": "nan"}

The stage tells a collapsed model from corrupt inputs: a model that collapses under pruning
produces its first non-finite value in a block's output or the evaluation loss, with finite
statistics, scores and weights before it; corrupt weights show up at stage "weights" (as loaded),
before any pruning, and the record's weights hash then differs from the cache manifest's.
"""
from __future__ import annotations

from typing import Any

import torch

# stage -> what a reader is told, in the order a run meets them
STAGES = {
    "weights": "the model's weights as loaded (before pruning)",
    "statistics": "the calibration statistics",
    "score": "the pruning score",
    "pruned": "the pruned weights",
    "block_output": "a pruned block's output on the calibration windows",
    "eval": "the evaluation loss",
    "accuracy": "the zero-shot log-probabilities",
}
_KEYS = ("dataset", "block", "linear", "parameter", "window", "task")


class NonFinite(ArithmeticError):
    """A NaN or inf found by a check; `place` says where (JSON-able, for the run record)."""

    def __init__(self, place: dict[str, Any]):
        self.place = place
        super().__init__(f"non-finite value ({place.get('value', 'nan')}) in {describe(place)}")


def describe(place: dict[str, Any] | None) -> str:
    """'the pruned weights, block 3, Linear mlp.down_proj' from a place dict."""
    if not place:
        return "an unknown place"
    parts = [STAGES.get(place.get("stage"), str(place.get("stage")))]
    for k in _KEYS:
        if place.get(k) is not None:
            parts.append(f"{'Linear' if k == 'linear' else k} {place[k]}")
    return ", ".join(parts)


def _kind(t: torch.Tensor) -> str:
    return "nan" if bool(torch.isnan(t).any()) else "inf"


def check(t: torch.Tensor | None, stage: str, **where: Any) -> None:
    """Raise NonFinite(stage, where...) if `t` holds a NaN or an inf (one fused pass over t)."""
    if t is None or not t.is_floating_point() or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise NonFinite({"stage": stage, **{k: v for k, v in where.items() if v is not None}, "value": _kind(t)})


def check_rows(t: torch.Tensor, stage: str, key: str = "window", offset: int = 0, **where: Any) -> None:
    """Like check, naming the first row (window) of `t` that holds a non-finite value."""
    if t.numel() == 0 or bool(torch.isfinite(t).all()):
        return
    bad = ~torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
    i = int(bad.nonzero()[0, 0])
    raise NonFinite({"stage": stage, **{k: v for k, v in where.items() if v is not None}, key: offset + i,
                     "value": _kind(t[i])})


@torch.no_grad()
def check_weights(model: torch.nn.Module) -> None:
    """Every parameter and buffer of a loaded model finite; otherwise NonFinite naming the first
    one (its block and Linear where it belongs to a decoder block)."""
    from wanda_core.prune.blocks import find_blocks, find_linears

    where: dict[int, dict[str, Any]] = {}
    for bi, block in enumerate(find_blocks(model)):
        for name, lin in find_linears(block).items():
            where[id(lin.weight)] = {"block": bi, "linear": name}
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise NonFinite({"stage": "weights", **where.get(id(p), {}), "parameter": name, "value": _kind(p)})


def first_nonfinite_text(place: dict[str, Any] | None) -> str:
    """'first non-finite value (nan) in the evaluation loss, dataset wiki, window 3'."""
    return f"first non-finite value ({(place or {}).get('value', 'nan')}) in {describe(place)}"
