"""RunConfig: everything that decides a prune-and-evaluate run, validated before any long work.

    cfg = RunConfig(method="wanda", sparsity=0.5, structure="2:4")
    cfg.validate()          # raises ValueError naming the bad value and what is valid

Methods (the paper's names, plus its ablations):
  dense        no pruning (the baseline row)
  magnitude    |W|, one threshold per layer (comparison group "layer"), no calibration data; as the
               official code, every weight at or below the threshold goes (`mask_rule`)
  wanda        |W| * ||X||, per output row (group "row")
  sparsegpt    SparseGPT: OBS weight update, its own w^2/[H^-1]^2 mask chosen block by block
  wanda-alpha  the official code's `--use_variant`: per-row masks keeping a fraction alpha of each
               row's summed score, alpha bisected so the layer reaches the target sparsity
`score`/`group` override a method's default (the comparison-group ablation); `weight_update`
adds SparseGPT's update after a magnitude or Wanda mask: "sequential" (whole mask first, then
the OBS update) or "iterative" (mask chosen block by block on the updated weights).

Each field is declared once below, with its default and a trailing comment that says why; the
command line (cli.py) is generated from these fields, their types and the comments. Whether a run
needs calibration data is decided in one place, wanda_core.prune.settings.needs_calibration.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
from dataclasses import dataclass, field
from typing import Any

from wanda_core.prune.allocation import ALLOCATIONS, check_owl
from wanda_core.prune.refine import DSNOT_SKIPS, REFINES
from wanda_core.prune.masks import GROUPS, check_nm, check_sparsity
from wanda_core.prune.settings import needs_calibration

PRUNE_METHODS = ("dense", "magnitude", "wanda", "sparsegpt", "wanda-alpha")
DEFAULT_GROUP = {"magnitude": "layer", "wanda": "row", "wanda-alpha": "row", "sparsegpt": "row", "dense": "row"}
UPDATES = ("none", "sequential", "iterative")
DTYPES = ("float32", "float16", "bfloat16")  # names accepted everywhere; torch_dtype maps them


def torch_dtype(name: str):
    """The torch dtype named `name` (one of DTYPES); the one table of dtype names in the package."""
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if isinstance(name, torch.dtype):
        return name
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return table[name]


@dataclass
class RunConfig:
    model: str = "smollm2-135m"       # embedded (smollm2-135m, gemma3-270m, tiny-llama, ...), a local model dir, or a hub id
    method: str = "wanda"             # pruning method (wanda-alpha: the official code's per-row alpha variant)
    sparsity: float = 0.5             # fraction of weights removed, in [0, 1); the paper's headline 0.5; N:M sets 1 - N/M
    structure: str = "unstructured"   # 'unstructured' or N:M such as 2:4, 4:8 (keep N of every M)
    score: str | None = None          # score override for ablations: magnitude, wanda, or a registered score
    group: str | None = None          # comparison group override (method default: layer for magnitude, row otherwise)
    weight_update: str = "none"       # add SparseGPT's OBS update after a magnitude/wanda mask (the appendix ablation)
    calib: str = "wiki"               # calibration text: wiki (embedded), c4 (the paper's, hub), or a .txt/.jsonl file
    nsamples: int = 128               # calibration windows (the paper's 128)
    seqlen: int = 512                 # tokens per calibration/evaluation window (paper 2048/4096; 512 keeps CPU runs short)
    seed: int = 0                     # calibration sampling seed (the paper's 0)
    eval: tuple[str, ...] = ("wiki",) # perplexity datasets: wiki (embedded), wikitext2 (the paper's, hub), .txt/.jsonl files
    eval_windows: int | None = None   # evaluate on at most N windows (quick runs; recorded); none = the whole split
    tasks: tuple[str, ...] = ()       # zero-shot tasks through lm-eval: the paper's boolq rte hellaswag winogrande arc_easy arc_challenge openbookqa (or 'paper'), lambada_openai, the proxies wiki_lastword wiki_nextsent
    task_dir: str | None = None       # directory of local JSONL task files (overrides task_source)
    task_source: str = "embedded"     # zero-shot data: embedded (PyPI copies, offline) or hub
    task_limit: int | None = None     # at most this many examples per task (quick runs); none = all
    blocksize: int = 128              # SparseGPT's lazy-update block (the paper's 128)
    percdamp: float = 0.01            # SparseGPT's dampening, a fraction of mean diag(H) (the paper's 0.01)
    dtype: str = "float32"            # float32 on CPU; float16 on a GPU as the paper
    device: str = "cpu"               # cpu, cuda or cuda:N
    batch_size: int = 8               # windows per forward pass; changes speed, not results
    offload: bool = False             # weights stay in CPU memory, one block at a time on `device` (results identical)
    save_weights: bool = False        # keep the pruned weights so later evaluations reuse them
    # After Wanda (wanda_core.prune.allocation, wanda_core.prune.refine); each enters the record hash only when not its default
    allocation: str = "uniform"       # per-block sparsity: uniform (the paper's) or owl (OWL's outlier-weighted)
    owl_m: float = 5.0                # OWL's M: an outlier is a Wanda score above M x its block's mean (OWL's 5)
    owl_lambda: float = 0.08          # OWL's lambda: block sparsities span 2*lambda around the target (OWL's 0.08)
    refine: str = "none"              # mask refinement without training: none, or dsnot (DSnoT's prune-and-grow)
    dsnot_cycles: int = 50            # DSnoT's max_cycle_time: at most this many swaps per row (its README's 50)
    dsnot_threshold: float = 0.1      # DSnoT's update_threshold: a row stops when |expected error| <= this (0.1)
    dsnot_var_power: float = 1.0      # DSnoT's pow_of_var_regrowing: regrow by W*E[x] / Var(x)^power (its 1)
    dsnot_skip: str = "mlp"           # DSnoT's skip_layer: Linears it leaves alone (mlp, its default; attn; none)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept in the record (KEY=VALUE)

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
        return needs_calibration(self)

    @property
    def mask_rule(self) -> str:
        """How the mask meets the sparsity. "threshold" for the paper's magnitude baseline: the official
        prune_magnitude removes every weight with |W| <= the layer's threshold, so ties can push it
        past the target; "exact" (int(size * sparsity) weights per comparison group) otherwise."""
        if (self.method == "magnitude" and self.effective_score == "magnitude" and self.effective_group == "layer"
                and self.nm is None and self.weight_update != "iterative"):
            return "threshold"
        return "exact"

    def prune_fields(self) -> dict[str, Any]:
        """The fields that decide the pruned weights (their hash names the run)."""
        f = {k: getattr(self, k) for k in ("model", "method", "dtype")}
        if self.method == "dense":
            return f
        f["structure"] = self.structure
        f.update(score=self.effective_score, group=self.effective_group, weight_update=self.weight_update,
                 sparsity=round(self.target_sparsity, 6), mask_rule=self.mask_rule)
        if self.needs_calibration:
            f.update(calib=self.calib, nsamples=self.nsamples, seqlen=self.seqlen, seed=self.seed)
        if self.method == "sparsegpt" or self.weight_update != "none":
            f.update(blocksize=self.blocksize, percdamp=self.percdamp)
        if self.allocation != "uniform":
            f.update(allocation=self.allocation, owl_m=self.owl_m, owl_lambda=self.owl_lambda)
        if self.refine != "none":
            f.update({k: getattr(self, k) for k in ("refine", "dsnot_cycles", "dsnot_threshold", "dsnot_var_power",
                                                    "dsnot_skip")})
        return f

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)

    # --- validation ----------------------------------------------------------------------------
    def validate(self) -> "RunConfig":
        from wanda_core.prune.scores import SCORES

        self.eval = tuple([self.eval] if isinstance(self.eval, str) else self.eval)
        self.tasks = tuple([self.tasks] if isinstance(self.tasks, str) else self.tasks)
        for name, valid in field_choices().items():
            v = getattr(self, name)
            if v is not None and v not in valid:
                raise ValueError(f"unknown {name} {v!r}; valid: {', '.join(map(str, valid))}")
        if self.structure != "unstructured":
            check_nm(*_parse_nm(self.structure))
        else:
            check_sparsity(self.sparsity)
        if self.score is not None and self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; valid: {', '.join(SCORES)} (or register_score)")
        if self.method == "sparsegpt" and (self.score is not None or self.group not in (None, "row")):
            bad = f"score {self.score!r}" if self.score is not None else f"group {self.group!r}"
            raise ValueError(f"{bad} does not apply to method 'sparsegpt': it chooses its mask with its own OBS criterion, "
                             "row by row; valid with sparsegpt: no score, group 'row' (its own). For a score or group "
                             "with SparseGPT's update use method 'magnitude' or 'wanda' with weight_update 'sequential'")
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
        if not isinstance(self.offload, bool):
            raise ValueError(f"offload must be True or False, got {self.offload!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N")
        _check_successors(self)
        return self


def _check_successors(cfg: RunConfig) -> None:
    """OWL's allocation and DSnoT's refinement: values, and the combinations that are not defined."""


    if cfg.method == "dense":
        return
    if cfg.allocation == "owl":
        if cfg.nm:
            raise ValueError(f"allocation 'owl' gives each block its own sparsity, but structure {cfg.structure} fixes "
                             f"every block at {cfg.target_sparsity:g}: a per-block N:M ratio is not defined; use "
                             "structure='unstructured' with OWL, or allocation='uniform' with N:M")
        check_owl(cfg.target_sparsity, cfg.owl_lambda, cfg.owl_m)
    if cfg.refine == "dsnot":
        if cfg.method == "sparsegpt" or cfg.weight_update == "iterative":
            raise ValueError("refine 'dsnot' swaps weights of a fixed matrix, but SparseGPT's own mask (method sparsegpt, "
                             "or weight_update 'iterative') is chosen on weights it has already updated; use method "
                             "wanda/magnitude/wanda-alpha (optionally with weight_update='sequential', applied after DSnoT)")
        if not isinstance(cfg.dsnot_cycles, int) or isinstance(cfg.dsnot_cycles, bool) or cfg.dsnot_cycles < 1:
            raise ValueError(f"dsnot_cycles must be a whole number >= 1, got {cfg.dsnot_cycles!r} (DSnoT's default 50)")
        for name in ("dsnot_threshold", "dsnot_var_power"):
            v = getattr(cfg, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")


def _parse_nm(structure: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in str(structure).split(":"))
    except ValueError:
        raise ValueError(f"unknown structure {structure!r}; valid: 'unstructured' or 'N:M' such as '2:4', '4:8'") from None
    return n, m


# --- what the command line reads from the declarations above -------------------------------------
# The fields that only matter when weights are pruned: `python -m wanda_core evaluate` (a dense
# model) leaves them out. A new field appears in both commands until it is listed here.
PRUNING_FIELDS = ("method", "sparsity", "structure", "score", "group", "weight_update", "calib", "nsamples",
                  "seed", "blocksize", "percdamp", "save_weights", "allocation", "owl_m", "owl_lambda", "refine",
                  "dsnot_cycles", "dsnot_threshold", "dsnot_var_power", "dsnot_skip")
# The valid values of a field, from the constants above (a field may also declare
# metadata={"choices": ...} or a typing.Literal type).
TASK_SOURCES = ("embedded", "hub")
CHOICES = {"method": PRUNE_METHODS, "group": GROUPS, "weight_update": UPDATES, "dtype": DTYPES, "task_source": TASK_SOURCES,
           "allocation": ALLOCATIONS, "refine": REFINES, "dsnot_skip": DSNOT_SKIPS}


def field_choices(cls=None) -> dict[str, tuple]:
    """Every field with a fixed set of valid values: CHOICES, metadata["choices"], or a Literal type."""
    import typing

    cls = cls or RunConfig
    hints = typing.get_type_hints(cls)
    out = {k: v for k, v in CHOICES.items() if k in hints}
    for f in dataclasses.fields(cls):
        if "choices" in f.metadata:
            out[f.name] = tuple(f.metadata["choices"])
        elif typing.get_origin(hints[f.name]) is typing.Literal:
            out[f.name] = typing.get_args(hints[f.name])
    return out


def field_help(cls=None) -> dict[str, str]:
    """Each field's one-line help: metadata["help"] if given, else its trailing comment in the source
    (of the class that declares it, so a subclass's new fields get theirs too)."""
    cls = cls or RunConfig
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_trailing_comments(klass))
    return {f.name: f.metadata.get("help") or comments.get(f.name, "") for f in dataclasses.fields(cls)}


@functools.lru_cache(maxsize=None)
def _trailing_comments(klass) -> dict[str, str]:
    """{field: the comment on its declaration's lines} for the fields `klass` itself declares."""
    try:
        src = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source available (a frozen app): help from metadata only
        return {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(src).readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found = [comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments]
            if found:
                out[node.target.id] = found[0]
    return out


__all__ = ["RunConfig", "PRUNE_METHODS", "GROUPS", "UPDATES", "DTYPES", "torch_dtype", "PRUNING_FIELDS", "CHOICES"]
