"""The book's figures, one function per figure, drawn from the experiments' frames in the book's
style (wanda_core.present.style). Each shows the figure and returns nothing.

    from wanda_core import figures
    figures.sparsity_curve(sweeps.sparsity_sweep(P))

Axes say what is measured and in which unit; a log scale is used (and said) when the values span
more than a few times, so a collapsed method does not flatten the others.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from .present import GROUP_LABEL, PALETTE, STRUCTURE_LABEL, dataset_label, label, mark_diverged, model_label

TINY = np.finfo(np.float32).tiny  # keeps a log axis valid if a value is zero


def _plt():
    import matplotlib.pyplot as plt

    return plt


def positive(x, floor: float = 1e-6) -> float:
    """A value safe for a log axis (None/NaN/<= 0 become `floor`)."""
    return floor if x is None or not isinstance(x, (int, float)) or math.isnan(x) or x <= floor else float(x)


def value_axis(ax, values: Iterable[float], spread: float = 3.0) -> str:
    """Log y axis when the values span more than `spread` x, else linear from zero; the wording for
    the axis label ("log scale" or "")."""
    v = [positive(x) for x in values]
    if v and max(v) / min(v) > spread:
        ax.set_yscale("log")
        return " (log scale)"
    ax.set_ylim(0, None)
    return ""


def _ppl_axis(ax, df: pd.DataFrame, values) -> None:
    ax.set_ylabel(f"perplexity on {dataset_label(df['dataset'].iloc[0])}{value_axis(ax, values)}, lower is better")


def channel_norms(norms: pd.DataFrame) -> None:
    """Scatter of ||X_j||_2 over channels for each picked layer, median and 10x median marked."""
    plt = _plt()
    picked = list(dict.fromkeys(norms.loc[norms["picked"], "layer"]))
    rows = -(-len(picked) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, picked):
        v = np.clip(norms.loc[norms["layer"] == name].sort_values("channel")["norm"].to_numpy(), TINY, None)
        med = float(np.median(v))
        ax.scatter(np.arange(v.size), v, s=4, color=PALETTE["Wanda"], alpha=0.8)
        ax.axhline(med, color="black", lw=0.8, label="median channel")
        ax.axhline(10 * med, color=PALETTE["Magnitude"], ls="--", lw=0.8, label="10 x median")
        for j in np.argsort(v)[::-1][:3]:
            ax.annotate(str(j), (j, v[j]), textcoords="offset points", xytext=(3, 2), fontsize=8)
        block, lname = name.split(".", 1)
        ax.set_yscale("log")
        ax.set_title(f"block {block}, input of {lname} ({v.size} channels)", fontsize=10)
        ax.set_xlabel("input channel j")
        ax.set_ylabel(r"$\Vert X_j \Vert_2$ (log scale)")
    for ax in axes.flat[len(picked):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Input-activation norm of every channel, dense model, {int(norms['tokens'].iloc[0]):,} tokens "
                 "(the three largest are numbered)")
    fig.tight_layout()
    plt.show()


def norm_tail(norms: pd.DataFrame) -> None:
    """Each picked layer's channel norms sorted, over the layer's median (log-log)."""
    plt = _plt()
    fig, ax = plt.subplots()
    for name, d in norms[norms["picked"]].groupby("layer", sort=False):
        v = np.sort(np.clip(d["norm"].to_numpy(), TINY, None))[::-1]
        ax.plot(np.arange(1, v.size + 1), v / np.median(v), label=name)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("channel rank (1 = largest norm, log scale)")
    ax.set_ylabel(r"$\Vert X_j \Vert_2$ / layer median (log scale)")
    ax.set_title("How far the largest channels stand out, dense model")
    ax.legend(title="layer", fontsize=8)
    plt.show()


def attention_heatmap(norms: pd.DataFrame) -> None:
    """log10(norm / block median) of the attention input, every block x every channel."""
    from .experiments.outliers import attention_matrix

    plt = _plt()
    name, M = attention_matrix(norms)
    rel = np.log10(M / np.median(M, axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(10, 3.8))
    im = ax.imshow(rel, aspect="auto", cmap="magma", interpolation="nearest", vmin=-1, vmax=max(1.0, float(rel.max())))
    fig.colorbar(im, ax=ax, label=r"$\log_{10}$(norm / block median)")
    ax.grid(False)
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("input channel j")
    ax.set_ylabel("block")
    ax.set_title(f"Input of {name} in every block, dense model")
    plt.show()


def ratio_vs_paper(cmp: pd.DataFrame, ours_col: str, paper_col: str) -> None:
    """Perplexity / dense perplexity, ours and the paper's side by side, by pattern and method."""
    import seaborn as sns

    plt = _plt()
    d = cmp[cmp["method"] != "dense"]
    long = pd.concat([d.assign(source=paper_col, ratio=d["paper / dense"]), d.assign(source=ours_col, ratio=d["ours / dense"])])
    long = long.dropna(subset=["ratio"]).assign(method=lambda x: x["method"].map(label),
                                                 pattern=lambda x: x["structure"].map(STRUCTURE_LABEL))
    sources = list(dict.fromkeys(long["source"]))
    fig, axes = plt.subplots(1, len(sources), figsize=(5 * len(sources), 4.2), sharey=True, squeeze=False)
    for ax, src in zip(axes[0], sources):
        sns.barplot(data=long[long["source"] == src], x="pattern", y="ratio", hue="method", palette=PALETTE, ax=ax,
                    order=[p for p in STRUCTURE_LABEL.values() if p in set(long["pattern"])])
        ax.axhline(1.0, color=PALETTE["Dense"], ls="--", lw=1)
        ax.set_title(src, fontsize=10)
        ax.set_xlabel("sparsity pattern (50 % of weights removed)")
        ax.get_legend().remove()
    axes[0][-1].legend(title="method", bbox_to_anchor=(1.03, 1), loc="upper left")
    axes[0][0].set_ylabel("perplexity / dense perplexity" + value_axis(axes[0][0], long["ratio"]) + ", lower is better")
    fig.suptitle("How much pruning costs, relative to each model's own dense perplexity", y=1.02)
    plt.show()


def per_block(pb: pd.DataFrame, target: float = 0.5) -> None:
    """Zeros per decoder block for each pruned run, methods side by side."""
    from matplotlib.ticker import PercentFormatter

    plt = _plt()
    fig, ax = plt.subplots()
    meths = list(dict.fromkeys(pb["method"]))
    for k, m in enumerate(meths):  # shifted, so equal values do not hide each other
        sub = pb[pb["method"] == m]
        ax.plot(sub["block"] + (k - (len(meths) - 1) / 2) * 0.22, sub["sparsity"], marker="os^D"[k % 4], ls="none",
                ms=5, color=PALETTE.get(label(m)), label=label(m))
    ax.axhline(target, color="black", lw=0.8, ls=":")
    ax.set_ylim(min(target - 0.05, pb["sparsity"].min() - 0.01), max(target + 0.05, pb["sparsity"].max() + 0.01))
    ax.yaxis.set_major_formatter(PercentFormatter(1))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("decoder block")
    ax.set_ylabel("zero weights in the block's linear layers (%)")
    ax.set_title(f"Per-block sparsity, target {target:.0%} unstructured")
    ax.legend(title="method", fontsize=9)
    plt.show()


def structure_bars(nm: pd.DataFrame) -> None:
    """Perplexity of each method under unstructured 50%, 4:8 and 2:4, dense as a line."""
    import seaborn as sns

    plt = _plt()
    dense = float(nm.loc[nm["method"] == "dense", "ppl"].iloc[0])
    d = nm[nm["method"] != "dense"].assign(method=lambda x: x["method"].map(label), pattern=lambda x: x["structure"].map(STRUCTURE_LABEL))
    fig, ax = plt.subplots()
    sns.barplot(data=d, x="pattern", y="ppl", hue="method", palette=PALETTE, ax=ax)
    ax.axhline(dense, color=PALETTE["Dense"], ls="--", lw=1, label=f"dense ({dense:,.2f})")
    _ppl_axis(ax, nm, [*d["ppl"], dense])
    ax.set_xlabel("sparsity pattern (all remove 50% of the weights)")
    ax.set_title(f"{model_label(nm['model'].iloc[0])}: the cost of structure")
    ax.legend(fontsize=9)
    plt.show()


def sparsity_curve(sw: pd.DataFrame) -> None:
    """Perplexity against unstructured sparsity, one line per method, dense as a line (log y)."""
    plt = _plt()
    dense = float(sw.loc[sw["method"] == "dense", "ppl"].iloc[0])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for m, sub in sw[sw["method"] != "dense"].groupby("method", sort=False):
        sub = sub.sort_values("sparsity")
        ax.plot(100 * sub["sparsity"], sub["ppl"], marker="o", ms=4, color=PALETTE[label(m)], label=label(m))
    ax.axhline(dense, color=PALETTE["Dense"], ls="--", lw=1, label=f"dense ({dense:,.2f})")
    ax.set_yscale("log")
    mark_diverged(ax, sw[sw["method"] != "dense"], "sparsity", 100, lambda r: PALETTE[label(r["method"])])
    ax.set_xlabel("sparsity: share of each pruned layer's weights set to zero (%)")
    ax.set_ylabel(f"perplexity on {dataset_label(sw['dataset'].iloc[0])} (log scale)")
    ax.set_title(f"{model_label(sw['model'].iloc[0])}, unstructured pruning")
    ax.legend(fontsize=9)
    plt.show()


def calibration(spread: pd.DataFrame, cal: pd.DataFrame) -> None:
    """Mean ± std (band: min to max) over seeds against calibration windows, and the std alone."""
    plt = _plt()
    dense = float(cal.loc[cal["method"] == "dense", "ppl"].iloc[0])
    sizes = sorted(spread["nsamples"].unique())
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    for m, s in spread.groupby("method", sort=False):
        s, c = s.sort_values("nsamples"), PALETTE[label(m)]
        ax.fill_between(s["nsamples"], s["min"], s["max"], color=c, alpha=0.18, lw=0)
        ax.errorbar(s["nsamples"], s["mean"], yerr=s["std"], color=c, marker="o", ms=4, capsize=3,
                    label=f"{label(m)}: mean ± 1 std (band: min to max)")
        ax2.plot(s["nsamples"], s["std"], color=c, marker="o", ms=4, label=label(m))
    ax.axhline(dense, color=PALETTE["Dense"], ls="--", lw=1, label=f"dense ({dense:,.2f})")
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xticks(sizes, labels=[str(n) for n in sizes])
        a.minorticks_off()
        a.set_xlabel(f"calibration windows of {cal['seqlen'].iloc[0]} tokens (log scale)")
    log = spread["max"].max() / min(spread["min"].min(), dense) > 10
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(f"perplexity on {dataset_label(cal['dataset'].iloc[0])}" + (" (log scale)" if log else ""))
    ax.set_title(f"{model_label(cal['model'].iloc[0])}, 50% unstructured, {int(spread['seeds'].max())} calibration seeds")
    ax.legend(fontsize=8)
    ax2.set_ylabel("std of perplexity across seeds")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Spread due to the calibration sample")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def group_bars(cg: pd.DataFrame) -> None:
    """Perplexity by comparison group (x) and score (hue), dense as a line."""
    import seaborn as sns

    plt = _plt()
    dense = float(cg.loc[cg["method"] == "dense", "ppl"].iloc[0])
    d = cg[cg["method"] != "dense"].assign(score=lambda x: x["score"].map(label), group=lambda x: x["group"].map(GROUP_LABEL),
                                           ppl=lambda x: [positive(v) for v in x["ppl"]])
    fig, ax = plt.subplots()
    sns.barplot(data=d, x="group", y="ppl", hue="score", order=list(GROUP_LABEL.values()), palette=PALETTE, ax=ax)
    ax.axhline(positive(dense), color=PALETTE["Dense"], ls="--", lw=1.2, label="Dense")
    _ppl_axis(ax, cg, [*d["ppl"], dense])
    ax.set_xlabel("comparison group (which weights compete for the kept half)")
    ax.set_title(f"{model_label(cg['model'].iloc[0])}, 50 % unstructured sparsity: score x comparison group")
    ax.legend(title="score")
    plt.show()


def update_bars(wu: pd.DataFrame) -> None:
    """Perplexity of each mask without and with the weight update, unstructured and 2:4 panels;
    SparseGPT and dense as lines."""
    import seaborn as sns

    plt = _plt()
    dense = float(wu.loc[wu["method"] == "dense", "ppl"].iloc[0])
    d = wu[~wu["method"].isin(["dense", "sparsegpt"])].assign(mask=lambda x: x["method"].map(label),
                                                              ppl=lambda x: [positive(v) for v in x["ppl"]])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, gridspec_kw={"width_ratios": [2, 1]})
    for ax, s in zip(axes, ("unstructured", "2:4")):
        sns.barplot(data=d[d["structure"] == s], x="mask", y="ppl", hue="weight_update",
                    hue_order=["none", "sequential", "iterative"], palette="crest", ax=ax)
        sg = wu[(wu["method"] == "sparsegpt") & (wu["structure"] == s)]["ppl"]
        if len(sg):
            ax.axhline(positive(sg.iloc[0]), color=PALETTE["SparseGPT"], ls="-.", lw=1.3, label="SparseGPT")
        ax.axhline(positive(dense), color=PALETTE["Dense"], ls="--", lw=1.2, label="Dense")
        ax.set_title(STRUCTURE_LABEL[s] if s != "2:4" else "2:4 (50%)")
        ax.set_xlabel("mask chosen by")
        ax.get_legend().remove()
    axes[1].legend(*axes[0].get_legend_handles_labels(), title="weight update", bbox_to_anchor=(1.03, 1), loc="upper left")
    _ppl_axis(axes[0], wu, [*d["ppl"], *wu["ppl"]])
    axes[1].set_ylabel("")
    fig.suptitle(f"{model_label(wu['model'].iloc[0])}: masks with and without SparseGPT's weight update", y=1.02)
    plt.show()


def zeroshot(acc: pd.DataFrame) -> None:
    """Accuracy per task with its 95% interval for each configuration, chance as a bar."""
    from .present import CONFIG_LABEL

    plt = _plt()
    tasks = list(dict.fromkeys(acc["task"]))
    configs = list(dict.fromkeys(acc["config"]))
    fig, ax = plt.subplots(figsize=(11, 4))
    for k, (config, g) in enumerate(acc.groupby("config", sort=False)):
        g = g.set_index("task").loc[tasks]
        ax.errorbar([i + (k - (len(configs) - 1) / 2) * 0.1 for i in range(len(tasks))], 100 * g["acc"],
                    yerr=100 * (g["ci95_hi"] - g["acc"]), fmt="s" if "2:4" in config else "o", ms=4, capsize=2, color=PALETTE.get(label(g["method"].iloc[0])), mfc="white" if "2:4" in config else None,
                    label=CONFIG_LABEL.get(config, config))
    ax.scatter(range(len(tasks)), 100 * acc.groupby("task", sort=False)["chance"].first().loc[tasks],
               marker="_", s=400, c="k", label="chance")
    ax.set(xticks=range(len(tasks)), xticklabels=tasks, ylim=(0, 100), ylabel="accuracy (%), 95% interval",
           title=f"{model_label(acc['model'].iloc[0])}: zero-shot accuracy at 50% sparsity (open markers: 2:4)")
    ax.legend(fontsize=8, ncol=4)
    plt.show()


def time_phases(cpu: pd.DataFrame) -> None:
    """Seconds per pruning phase for each method, stacked."""
    plt = _plt()
    phases = {"capture": "capture", "statistics_forward": "statistics forward", "score_mask": "score + mask",
              "reforward": "re-forward", "other": "other"}
    d = cpu.set_index(cpu["method"].map(label))[list(phases)].rename(columns=phases)
    ax = d.plot.barh(stacked=True)
    ax.set(xlabel=f"seconds on {cpu['device'].iloc[0]}", ylabel="",
           title=f"{model_label(cpu['model'].iloc[0])}: where the pruning time goes")
    plt.show()


def speedup_tokens(tokens: pd.DataFrame) -> None:
    """2:4 speed-up of the smallest model's linear layers against tokens per call (log x)."""
    plt = _plt()
    tok = tokens[tokens["model"] == tokens["model"].cat.categories[0]]
    ax = tok.pivot_table(index="tokens", columns=["layer", "dtype", "backend", "mode"], values="speedup",
                         observed=True).plot(logx=True, marker="o")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set(xlabel="tokens per call (log scale)", ylabel="speed-up (dense time / 2:4 time)",
           title=f"LLaMA-{tok['model'].iloc[0]} linear layers")
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    plt.show()
