"""Chapter 12's figure, sentences and derived tables (the ladder of model sizes; chapter 11's test of its small-model explanations), from wanda_core.study.experiments.ladder."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report.present import CONFIG_LABEL, model_label
from wanda_core.study.experiments.ladder import SCORE_GAP, WANDA_VS_DENSE, WANDA_VS_SPARSEGPT


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


def ladder(out: dict[str, pd.DataFrame]) -> None:
    """Perplexity / dense (left) and the zero-shot mean with its 95% interval (right) against
    parameters (log axes), ours as lines and the paper's LLaMA points as open squares."""
    plt = pyplot()
    runs, paper, pz = out["runs"], out["paper"], out["paper_zeroshot"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for config, g in runs[runs["method"] != "dense"].groupby("config", sort=False):
        name = CONFIG_LABEL.get(config, config)
        line = a1.plot(g["params"], g["ppl_rel"], "o-", label=f"{name} (ours)")[0]
        p = paper[paper["config"] == config]
        a1.plot(p["params"], p["ppl_rel"], "s--", c=line.get_color(), alpha=0.5, label=f"{name} (paper, LLaMA-2)")
    for config, g in runs[runs["mean_acc"].notna()].groupby("config", sort=False):
        name = CONFIG_LABEL.get(config, config)
        bars = a2.errorbar(g["params"], 100 * g["mean_acc"], yerr=196 * g["stderr"], fmt="o-", capsize=2, label=name)
        p = pz[pz["config"] == config]
        a2.plot(p["params"], 100 * p["acc"], "s", c=bars[0].get_color(), alpha=0.5, label=f"{name} (paper, LLaMA)")
    a1.set(xscale="log", yscale="log", xlabel="parameters (log scale)", ylabel="perplexity / dense perplexity (log scale)",
           title="perplexity relative to dense")
    a2.set(xscale="log", xlim=a1.get_xlim(), xlabel="parameters (log scale)",
           ylabel="mean zero-shot accuracy (%), 95% interval", title="zero-shot mean over the real tasks")
    a1.legend(fontsize=7, ncol=2)
    if a2.get_legend_handles_labels()[0]:
        a2.legend(fontsize=7)
    plt.show()
