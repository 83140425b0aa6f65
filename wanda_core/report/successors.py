"""Chapter 13's figure, sentences and derived tables (OWL, RIA, DSnoT), from wanda_core.study.experiments.successors."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report.present import display_name, model_label, plus_minus


def successors_intro(P, out: dict[str, pd.DataFrame]) -> str:
    d = out["dense"].iloc[0]
    return (f"{len(out['runs'])} pruning runs of {model_label(d['model'])}, seeds {', '.join(map(str, P.seeds))}; dense "
            f"perplexity (`{d['dataset']}`) {d['ppl']:.2f}" + (f", dense zero-shot mean {d['zeroshot_mean']:.1f}%"
                                                               if pd.notna(d["zeroshot_mean"]) else "") + ".")


def mean_spread(summary: pd.DataFrame, key: str, fmt: str) -> pd.DataFrame:
    """'mean ± std over seeds' of `key` (ppl or zeroshot), one row per method, one column per setting;
    n/a where a method does not apply (OWL under N:M)."""
    d = summary.dropna(subset=[f"{key}_mean"])
    t = d.assign(v=plus_minus(d[f"{key}_mean"], d[f"{key}_std"], fmt)).pivot(index="method", columns="setting", values="v")
    return t.fillna("n/a").rename_axis(columns=None).reset_index().astype({"method": str})


def zeroshot_runs(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's rows that have a zero-shot mean (the settings where zero-shot was run)."""
    return summary.dropna(subset=["zeroshot_mean"])


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
    t = paper.pivot_table(index=keys, columns="method", values="value", sort=False).rename(columns=display_name)
    return t.rename_axis(columns=None).reset_index().rename(columns={"structure": "pattern"})


def successors(out: dict[str, pd.DataFrame], seed: int) -> None:
    """Left: perplexity of every method and setting, mean and spread over seeds (log y), dense as a
    line. Right: OWL + Wanda's per-block sparsity at the highest setting for one seed, with the
    blocks' outlier ratios."""
    import seaborn as sns

    plt = pyplot()
    runs, blocks, dense = out["runs"], out["blocks"], out["dense"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    sns.pointplot(data=runs, x="setting", y="ppl", hue="method", errorbar="sd", dodge=0.4, ax=ax1,
                  markersize=4, linewidth=1.2, err_kws={"linewidth": 1})
    ax1.set(yscale="log", xlabel="unstructured sparsity, or N:M", ylabel=f"perplexity ({dense['dataset'][0]}), log scale",
            title="mean and spread over calibration seeds")
    ax1.axhline(dense["ppl"][0], color="grey", ls=":", lw=1, label="dense")
    ax1.legend(fontsize=8)
    owl = blocks[(blocks["method"] == "OWL + Wanda") & (blocks["seed"] == seed)]
    if owl.empty:
        ax2.set_visible(False)
    else:
        top = owl[owl["setting"] == owl["setting"].iloc[-1]]
        ax2.bar(top["block"], top["sparsity"], color="tab:orange", label="OWL's sparsity")
        ax2.axhline(top["sparsity"].mean(), color="k", lw=1, ls="--", label="target")
        ax2.set(xlabel="decoder block", ylabel="sparsity", ylim=(top["sparsity"].min() - 0.05, top["sparsity"].max() + 0.05),
                title=f"OWL + Wanda at {top['setting'].iloc[0]}, seed {seed}")
        ax3 = ax2.twinx()
        ax3.plot(top["block"], 100 * top["outlier_ratio"], color="tab:blue", marker=".", label="outlier ratio")
        ax3.set_ylabel("outlier ratio (%)")
        fig.legend(*[sum(x, []) for x in zip(ax2.get_legend_handles_labels(), ax3.get_legend_handles_labels())],
                   loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.show()
