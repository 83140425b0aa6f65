"""The derived tables and sentences of the book's "Beyond the paper" part: the ladder of models
(chapter 12, and chapter 11's test of its own small-model explanations) and the successors OWL,
RIA and DSnoT (chapter 13), from the frames of wanda_core.experiments.ladder and .successors.

    from wanda_core import findings_beyond as fb
    out = ladder.ladder(P)
    present.table(fb.claims_table(out["claims"])); present.md(fb.size_explanations(out["claims"]))
"""
from __future__ import annotations

import pandas as pd

from .experiments.ladder import SCORE_GAP, WANDA_VS_DENSE, WANDA_VS_SPARSEGPT
from .present import label, model_label, pm

# the three claims chapter 11 blames on model size: (ratio column, verdict column, claim, paper's side)
SIZE_CLAIMS = (("wanda_over_sparsegpt", "within_10pct", f"Wanda's perplexity within {WANDA_VS_SPARSEGPT - 1:.0%} of "
                f"SparseGPT's (Wanda / SparseGPT <= {WANDA_VS_SPARSEGPT:g})", "lower"),
               ("wanda_over_dense", "within_1_28x", f"Wanda within the paper's {WANDA_VS_DENSE:g}x of dense", "lower"),
               ("score_time_gap", "gap_over_10x", f"SparseGPT's score + mask over {SCORE_GAP:g}x Wanda's", "higher"))


def rungs(P, out: dict[str, pd.DataFrame]) -> str:
    """Which rungs this page shows, where their records come from, and which have none."""
    runs = out["runs"]
    scale = runs.loc[runs["where"] == "results/scale", "model"].unique()
    return (f"Profile `{P.name}`: rungs {', '.join(map(model_label, dict.fromkeys(runs['model'])))}; perplexity on "
            f"`{P.eval[0]}`. Rungs read from `results/scale`: {', '.join(map(model_label, scale)) or 'none'}. Rungs with "
            f"no records: {', '.join(map(model_label, out['missing']['model'])) or 'none'}.")


def ladder_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The ladder's runs with the zero-shot mean and its standard error in %."""
    return runs.assign(mean_acc=100 * runs["mean_acc"], stderr=100 * runs["stderr"])[
        ["model", "params", "config", "ppl", "ppl_rel", "mean_acc", "stderr", "score_seconds", "load", "where"]]


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    return claims[["model", "params", "where"] + [c for k in SIZE_CLAIMS for c in k[:2]]]


def size_explanations(claims: pd.DataFrame) -> str:
    """Per claim: on which rungs it holds, and whether its ratio moves toward the paper's side at
    every step up the ladder (what "it fails because the model is small" predicts)."""
    c = claims.sort_values("params")
    lines = []
    for ratio, verdict, claim, side in SIZE_CLAIMS:
        d = c.dropna(subset=[ratio])
        if d.empty:
            lines.append(f"- **{claim}**: not measured on any rung.")
            continue
        held = [model_label(m) for m, v in zip(d["model"], d[verdict]) if v]
        line = f"- **{claim}**: holds on {len(held)} of {len(d)} rungs" + (f" ({', '.join(held)})" if held else "")
        v = d[ratio].astype(float).to_numpy()
        steps = v[1:] < v[:-1] if side == "lower" else v[1:] > v[:-1]
        if len(d) > 1:
            line += (f"; from {model_label(d['model'].iloc[0])} to {model_label(d['model'].iloc[-1])} the ratio goes from "
                     f"{v[0]:.4g} to {v[-1]:.4g}, toward the paper's side at {int(steps.sum())} of {len(steps)} steps")
        if len(held) == len(d):
            line += ": it holds on every rung, so there is no failure for size to explain"
        elif len(d) == 1:
            line += "; one rung only, so the size explanation cannot be tested"
        else:
            line += (": consistent with the small-model explanation" if steps.all() else
                     ": size alone does not explain it")
        lines.append(line + ".")
    return "\n".join(lines)


def successors_intro(P, out: dict[str, pd.DataFrame]) -> str:
    d = out["dense"].iloc[0]
    return (f"{len(out['runs'])} pruning runs of {model_label(d['model'])}, seeds {', '.join(map(str, P.seeds))}; dense "
            f"perplexity (`{d['dataset']}`) {d['ppl']:.2f}" + (f", dense zero-shot mean {d['zeroshot_mean']:.1f}%"
                                                               if pd.notna(d["zeroshot_mean"]) else "") + ".")


def mean_spread(summary: pd.DataFrame, key: str, fmt: str) -> pd.DataFrame:
    """'mean ± std over seeds' of `key` (ppl or zeroshot), one row per method, one column per setting;
    n/a where a method does not apply (OWL under N:M)."""
    d = summary.dropna(subset=[f"{key}_mean"])
    t = d.assign(v=pm(d[f"{key}_mean"], d[f"{key}_std"], fmt)).pivot(index="method", columns="setting", values="v")
    return t.fillna("n/a").rename_axis(columns=None).reset_index().astype({"method": str})


def successor_claims(claims: pd.DataFrame) -> str:
    """Which README claims show here, and whether beyond the seeds' spread."""
    if claims.empty:
        return "_No claim can be checked with this profile's settings._"
    return "\n".join(f"- **{r.method}** vs {r.baseline} at {r.setting}: " + (
        f"better by {r.ppl_gain:.3f} in perplexity, " + ("beyond" if r.beyond_spread else "**not** beyond")
        + f" twice the seeds' spread ({2 * r.spread:.3f})" if r.shown else f"**not shown** (worse by {-r.ppl_gain:.3f})")
        + "." for r in claims.itertuples())


def successor_paper(paper: pd.DataFrame) -> pd.DataFrame:
    """The successors' README numbers (verified), one row per setting, one column per method."""
    keys = ["table", "metric", "model", "structure", "sparsity"]
    t = paper.pivot_table(index=keys, columns="method", values="value", sort=False).rename(columns=label)
    return t.rename_axis(columns=None).reset_index().rename(columns={"structure": "pattern"})
