"""The paper's ablations: the comparison group (chapter 7) and SparseGPT's weight update (chapter 8).

    from wanda_core.study.experiments import ablations
    cg = ablations.comparison_group(P)     # {magnitude, Wanda} score x {layer, column, row} group
    ablations.group_steps(cg)              # the published gain split into a group and a score step
    wu = ablations.weight_update(P)        # {magnitude, Wanda} mask x {none, sequential, iterative}

The published combinations (magnitude per layer, Wanda per row, SparseGPT) are Table 3's
configurations, so their records are shared with chapters 2 and 3.
"""
from __future__ import annotations

import math

import pandas as pd

from wanda_core.study.experiments.common import runs

SCORES = ("magnitude", "wanda")
GROUPS = ("layer", "column", "row")
PUBLISHED = {"magnitude": "layer", "wanda": "row"}  # each method's own comparison group
UPDATES = ("none", "sequential", "iterative")


def comparison_group_configs(P) -> list:
    return [P.config(method="dense")] + [P.config(method=s, sparsity=0.5, group=g) for s in SCORES for g in GROUPS]


def comparison_group(P) -> pd.DataFrame:
    """One row per (score, group) at 50% unstructured, dense first; `published` marks the paper's pairs."""
    df = runs(P, comparison_group_configs(P), "comparison group")
    df["published"] = [PUBLISHED.get(s) == g for s, g in zip(df["score"], df["group"])]
    return df


def group_steps(cg: pd.DataFrame) -> pd.DataFrame:
    """The drop in log perplexity (mean loss, nats per token) from magnitude-per-layer to Wanda-per-row,
    split into a group step and a score step, in both orders (the two effects need not add up)."""
    L = {(s, g): math.log(max(p, 1e-12)) for s, g, p in zip(cg["score"], cg["group"], cg["ppl"]) if s in SCORES}
    total = L["magnitude", "layer"] - L["wanda", "row"]
    steps = {"group first": (L["magnitude", "layer"] - L["magnitude", "row"], L["magnitude", "row"] - L["wanda", "row"]),
             "score first": (L["wanda", "layer"] - L["wanda", "row"], L["magnitude", "layer"] - L["wanda", "layer"])}
    nan = float("nan")
    return pd.DataFrame([{"order": k, "group_step": g, "score_step": s, "total": total,
                          "group_share": g / total if total > 0 else nan, "score_share": s / total if total > 0 else nan}
                         for k, (g, s) in steps.items()])


def weight_update_configs(P) -> list:
    cfgs = [P.config(method="dense")]
    cfgs += [P.config(method=m, sparsity=0.5, weight_update=u) for m in SCORES for u in UPDATES]
    cfgs += [P.config(method="wanda", structure="2:4", weight_update=u) for u in UPDATES[:2]]
    return cfgs + [P.config(method="sparsegpt", structure=s) for s in ("unstructured", "2:4")]


def weight_update(P) -> pd.DataFrame:
    """One row per (mask, update, structure), dense first; SparseGPT's own update is `own`, and
    `change` is the relative change in perplexity from the same mask without an update."""
    df = runs(P, weight_update_configs(P), "weight update")
    df.loc[df["method"] == "sparsegpt", "weight_update"] = "own"
    base = df[df["weight_update"] == "none"].set_index(["method", "structure"])["ppl"]
    df["change"] = [p / base[m, s] - 1 if u in UPDATES[1:] else float("nan")
                    for m, s, u, p in zip(df["method"], df["structure"], df["weight_update"], df["ppl"])]
    return df
