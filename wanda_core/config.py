"""RunConfig: everything that decides a prune-and-evaluate run, validated before any long work.

    cfg = RunConfig(method="wanda", sparsity=0.5, structure="2:4")
    cfg.validate()          # raises ValueError naming the bad value and what is valid

Methods (the paper's names, plus its ablations):
  dense        no pruning (the baseline row)
  magnitude    |W|, one threshold per layer (comparison group "layer"), no calibration data
  wanda        |W| * ||X||, per output row (group "row")
  sparsegpt    SparseGPT: OBS weight update, its own w^2/[H^-1]^2 mask chosen block by block
  wanda-alpha  the official code's `--use_variant`: per-row masks keeping a fraction alpha of each
               row's summed score, alpha bisected so the layer reaches the target sparsity
`score`/`group` override a method's default (the comparison-group ablation); `weight_update`
adds SparseGPT's update after a magnitude or Wanda mask: "sequential" (whole mask first, then
the OBS update) or "iterative" (mask chosen block by block on the updated weights).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .masks import GROUPS, check_group, check_nm, check_sparsity

METHODS = ("dense", "magnitude", "wanda", "sparsegpt", "wanda-alpha")
DEFAULT_GROUP = {"magnitude": "layer", "wanda": "row", "wanda-alpha": "row", "sparsegpt": "row", "dense": "row"}
UPDATES = ("none", "sequential", "iterative")


@dataclass
class RunConfig:
    model: str = "smollm2-135m"       # the embedded default; any HF id or local dir also works
    method: str = "wanda"             # the paper's method
    sparsity: float = 0.5             # the paper's headline ratio; ignored for N:M (1 - N/M)
    structure: str = "unstructured"   # or "N:M" such as "2:4", "4:8" (keep N of every M)
    score: str | None = None          # override the method's score ("magnitude", "wanda", registered)
    group: str | None = None          # override the comparison group: row, column, layer
    weight_update: str = "none"       # ablation: none, sequential, iterative (SparseGPT's update)
    calib: str = "wiki"               # calibration text: wiki (embedded), c4 (paper), or a file
    nsamples: int = 128               # calibration windows (the paper's 128)
    seqlen: int = 512                 # tokens per window (paper 2048/4096; 512 keeps CPU runs short)
    seed: int = 0                     # calibration sampling seed (the paper's 0)
    eval: tuple[str, ...] = ("wiki",) # perplexity datasets: wiki (embedded), wikitext2 (paper), files
    eval_windows: int | None = None   # cap on evaluation windows for quick runs; None = all
    tasks: tuple[str, ...] = ()       # zero-shot tasks through lm-eval (see wanda_core.zeroshot)
    task_dir: str | None = None       # local JSONL task files instead of the hub
    task_limit: int | None = None     # cap on examples per task for quick runs
    blocksize: int = 128              # SparseGPT's lazy-update block (the paper's 128)
    percdamp: float = 0.01            # SparseGPT's dampening, fraction of mean diag(H)
    dtype: str = "float32"            # CPU default; float16 on GPU as the paper
    device: str = "cpu"               # "cuda" on a GPU
    batch_size: int = 8               # windows per forward; changes speed, not results
    offload: bool = False             # weights stay in CPU memory, one block at a time on `device`
    save_weights: bool = False        # keep the pruned weights so later evaluations reuse them
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept in the record

    # --- derived -----------------------------------------------------------------------------
    @property
    def nm(self) -> tuple[int, int] | None:
        if self.structure == "unstructured":
            return None
        n, m = _parse_nm(self.structure)
        return n, m

    @property
    def target_sparsity(self) -> float:
        if self.method == "dense":
            return 0.0
        return 1 - self.nm[0] / self.nm[1] if self.nm else self.sparsity

    @property
    def effective_score(self) -> str:
        return self.score or {"sparsegpt": "sparsegpt", "wanda-alpha": "wanda"}.get(self.method, self.method)

    @property
    def effective_group(self) -> str:
        return self.group or DEFAULT_GROUP.get(self.method, "row")

    @property
    def needs_calibration(self) -> bool:
        from .scores import NEEDS_STATS

        if self.method == "dense":
            return False
        if self.method == "sparsegpt" or self.weight_update != "none":
            return True
        return NEEDS_STATS.get(self.effective_score, True)

    def prune_fields(self) -> dict[str, Any]:
        """The fields that decide the pruned weights (their hash names the run)."""
        f = {k: getattr(self, k) for k in ("model", "method", "dtype")}
        if self.method == "dense":
            return f
        f["structure"] = self.structure
        f.update(score=self.effective_score, group=self.effective_group, weight_update=self.weight_update,
                 sparsity=round(self.target_sparsity, 6))
        if self.needs_calibration:
            f.update(calib=self.calib, nsamples=self.nsamples, seqlen=self.seqlen, seed=self.seed)
        if self.method == "sparsegpt" or self.weight_update != "none":
            f.update(blocksize=self.blocksize, percdamp=self.percdamp)
        return f

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)

    # --- validation ----------------------------------------------------------------------------
    def validate(self) -> "RunConfig":
        from .scores import SCORES

        self.eval = tuple([self.eval] if isinstance(self.eval, str) else self.eval)
        self.tasks = tuple([self.tasks] if isinstance(self.tasks, str) else self.tasks)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.structure != "unstructured":
            check_nm(*_parse_nm(self.structure))
        else:
            check_sparsity(self.sparsity)
        if self.group is not None:
            check_group(self.group)
        if self.score is not None and self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; valid: {', '.join(SCORES)} (or register_score)")
        if self.weight_update not in UPDATES:
            raise ValueError(f"unknown weight_update {self.weight_update!r}; valid: {', '.join(UPDATES)}")
        if self.method == "sparsegpt" and self.weight_update != "none":
            raise ValueError("weight_update applies to magnitude/wanda masks; sparsegpt already updates weights")
        if self.method == "wanda-alpha" and self.nm:
            raise ValueError("wanda-alpha chooses a per-row sparsity, so it is unstructured only; use method wanda for N:M")
        for name in ("nsamples", "seqlen", "blocksize", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        if self.seqlen < 2:
            raise ValueError(f"seqlen must be >= 2 tokens, got {self.seqlen}")
        if self.eval_windows is not None and (not isinstance(self.eval_windows, int) or self.eval_windows < 1):
            raise ValueError(f"eval_windows must be a whole number >= 1 or None (all), got {self.eval_windows!r}")
        if not 0 <= self.percdamp < 1:
            raise ValueError(f"percdamp must be in [0, 1), got {self.percdamp}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"unknown dtype {self.dtype!r}; valid: float32, float16, bfloat16")
        if not isinstance(self.offload, bool):
            raise ValueError(f"offload must be True or False, got {self.offload!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N")
        return self


def _parse_nm(structure: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in str(structure).split(":"))
    except ValueError:
        raise ValueError(f"unknown structure {structure!r}; valid: 'unstructured' or 'N:M' such as '2:4', '4:8'") from None
    return n, m


__all__ = ["RunConfig", "METHODS", "GROUPS", "UPDATES"]
