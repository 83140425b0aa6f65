"""The figures of the book's "Beyond the paper" part (chapter 12, the ladder of models; chapter 13,
OWL, RIA and DSnoT), one function per figure, in the book's style, as wanda_core.figures.

    from wanda_core import figures_beyond
    figures_beyond.ladder(ladder.ladder(P))
    figures_beyond.successors(successors.table(P), seed=P.seeds[0])
"""
from __future__ import annotations

import pandas as pd

from .figures import _plt
from .present import CONFIG_LABEL


def ladder(out: dict[str, pd.DataFrame]) -> None:
    """Perplexity / dense (left) and the zero-shot mean with its 95% interval (right) against
    parameters (log axes), ours as lines and the paper's LLaMA points as open squares."""
    plt = _plt()
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


def successors(out: dict[str, pd.DataFrame], seed: int) -> None:
    """Left: perplexity of every method and setting, mean and spread over seeds (log y), dense as a
    line. Right: OWL + Wanda's per-block sparsity at the highest setting for one seed, with the
    blocks' outlier ratios."""
    import seaborn as sns

    plt = _plt()
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
