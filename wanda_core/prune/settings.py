"""What the engine reads from a run's configuration, and whether a prune needs calibration data.

The engine takes any object with these attributes (wanda_core.runs.config.RunConfig is the one the
package builds, validated); the prune layer declares them here so that it never imports the run
layer above it.
"""
from __future__ import annotations

from typing import Protocol

from wanda_core.prune.scores import NEEDS_STATS


class PruneSettings(Protocol):
    method: str                       # dense, magnitude, wanda, sparsegpt, wanda-alpha
    score: str | None                 # a score override (ablations)
    weight_update: str                # none, sequential, iterative
    blocksize: int                    # SparseGPT's lazy-update block
    percdamp: float                   # SparseGPT's dampening
    device: str                       # where an offloaded model's blocks are pruned
    offload: bool                     # weights in CPU memory, one block at a time on `device`
    batch_size: int                   # windows per forward pass
    allocation: str                   # uniform or owl
    owl_m: float
    owl_lambda: float
    refine: str                       # none or dsnot
    dsnot_cycles: int
    dsnot_threshold: float
    dsnot_var_power: float
    dsnot_skip: str

    @property
    def nm(self) -> tuple[int, int] | None: ...
    @property
    def target_sparsity(self) -> float: ...
    @property
    def effective_score(self) -> str: ...
    @property
    def effective_group(self) -> str: ...
    @property
    def mask_rule(self) -> str: ...
    def validate(self) -> "PruneSettings": ...


def needs_calibration(cfg: PruneSettings, score_fn=None) -> bool:
    """Does this prune read calibration data? The one place that decides. Dense never does; a
    plugged-in score function always may (it receives the statistics whatever the method); so do
    SparseGPT, a weight update, OWL's allocation and DSnoT; otherwise the score says (NEEDS_STATS)."""
    if cfg.method == "dense":
        return False
    if score_fn is not None or cfg.method == "sparsegpt" or cfg.weight_update != "none" \
            or cfg.allocation != "uniform" or cfg.refine != "none":
        return True
    return NEEDS_STATS.get(cfg.effective_score, True)
