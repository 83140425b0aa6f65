"""Scores: how important each weight is. Pure functions on tensors; higher = keep.

A score function takes the weight W (out_features x in_features) and the layer's calibration
statistics and returns a tensor shaped like W. The built-ins:

- `magnitude`: |W_ij| (no calibration data needed).
- `wanda`:     |W_ij| * ||X_j||_2, the paper's Eq. (1); ||X_j|| is the l2 norm of input feature j
               over all calibration tokens (the official code keeps a running mean of x_j^2).
- `ria`:       RIA's relative importance (Zhang et al., ICLR 2024): |W_ij| / sum_k |W_kj| +
               |W_ij| / sum_k |W_ik| (its column and its row), times ||X_j||^a with a = 0.5. The
               official code takes sqrt of the running mean of per-window sums of x^2, a constant
               multiple of ours, so the masks are the same; it compares within the layer (the
               `layer` group) unless asked for `--per_outneuron`.

Any function with this signature can be plugged into the engine (`register_score` or pass the
callable itself), which is the extension point for research and for the course assignments:

    def my_score(W: torch.Tensor, stats: LayerStats) -> torch.Tensor: ...

`stats.input_sq_mean[j]` is the mean of x_j^2 over the calibration tokens (float32) and
`stats.nsamples_tokens` how many tokens were seen, so ||X_j||_2 = sqrt(input_sq_mean * tokens);
Wanda's official code uses sqrt(mean) (the constant factor does not change any mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class LayerStats:
    """Calibration statistics of one Linear layer's inputs."""

    input_sq_mean: torch.Tensor | None = None  # (in_features,) running mean of x_j^2, float32
    tokens: int = 0                            # calibration tokens seen
    hessian: torch.Tensor | None = None        # (in, in) SparseGPT's H = 2/n sum x x^T, if gathered
    # DSnoT's moments (refine.accumulate_moments), gathered only for refine="dsnot"
    input_mean: torch.Tensor | None = None     # (in_features,) running mean of x_j over tokens
    input_var: torch.Tensor | None = None      # (in_features,) mean over windows of x_j's variance within a window
    moment_tokens: int = 0                     # tokens behind input_mean
    windows: int = 0                           # windows behind input_var

    @property
    def input_norm(self) -> torch.Tensor:
        """||X_j||_2 up to a constant: sqrt of the mean square (as the official code)."""
        if self.input_sq_mean is None:
            raise ValueError("this score needs calibration statistics, but none were gathered")
        return torch.sqrt(self.input_sq_mean)


ScoreFn = Callable[[torch.Tensor, LayerStats], torch.Tensor]


def magnitude(W: torch.Tensor, stats: LayerStats | None = None) -> torch.Tensor:
    return W.abs().float()


def wanda(W: torch.Tensor, stats: LayerStats) -> torch.Tensor:
    return W.abs().float() * stats.input_norm.to(W.device).reshape(1, -1)


RIA_POWER = 0.5  # RIA's a: the activation norm enters as ||X_j||^a (its paper's and code's default)


def ria(W: torch.Tensor, stats: LayerStats) -> torch.Tensor:
    A = W.abs().float()
    tiny = torch.finfo(A.dtype).tiny  # an all-zero row or column scores 0, not NaN
    relative = A / A.sum(dim=0, keepdim=True).clamp_min(tiny) + A / A.sum(dim=1, keepdim=True).clamp_min(tiny)
    return relative * stats.input_norm.to(W.device).reshape(1, -1) ** RIA_POWER


SCORES: dict[str, ScoreFn] = {"magnitude": magnitude, "wanda": wanda, "ria": ria}
NEEDS_STATS = {"magnitude": False, "wanda": True, "ria": True}


def register_score(name: str, fn: ScoreFn, needs_calibration: bool = True) -> None:
    """Make `fn` available by name to the engine and the command line."""
    if not callable(fn):
        raise TypeError(f"score {name!r} must be callable (W, stats) -> tensor, got {type(fn).__name__}")
    SCORES[name] = fn
    NEEDS_STATS[name] = needs_calibration


def get_score(score: str | ScoreFn) -> ScoreFn:
    if callable(score):
        return score
    try:
        return SCORES[score]
    except KeyError:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)} or a callable") from None


def check_score_output(s: torch.Tensor, W: torch.Tensor, name: str = "score") -> torch.Tensor:
    """A pluggable score must return one finite number per weight."""
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"{name} returned {type(s).__name__}, expected a tensor shaped like W {tuple(W.shape)}")
    if s.shape != W.shape:
        raise ValueError(f"{name} returned shape {tuple(s.shape)}, expected W's shape {tuple(W.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError(f"{name} returned non-finite values (NaN or inf); scores must be finite")
    return s
