"""Chapters 2 and 3's figures, sentences and derived tables (Table 3 at 50% unstructured, N:M), from wanda_core.study.experiments.tables."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import ppl_axis, pyplot, value_axis
from wanda_core.report.present import display_name, model_label, PALETTE, ranking, STRUCTURE_LABEL, table
from wanda_core.study import paper


def not_paper_dense(df: pd.DataFrame) -> str:
    """Chapter 1's warning that our dense perplexity is not the paper's (empty in the paper setting)."""
    if paper.is_paper_setting(df):
        return ""
    paper_model = paper.model_for(df)
    d = paper.value(paper.numbers(), paper_model, "dense")
    return (f"This is **not the paper's model**: the paper's dense {paper_model} scores {d:.2f} on WikiText-2; "
            f"{model_label(df['model'].iloc[0])} is a different, much smaller model evaluated on different text, so its "
            "perplexity is not comparable with the paper's. Later chapters compare ratios to this baseline instead.")


def table3(t3: pd.DataFrame) -> str:
    r = t3.set_index("method")["ppl_ratio"]
    d = t3[t3["method"] != "dense"]
    return (f"On {model_label(t3['model'].iloc[0])}, magnitude pruning multiplies the dense perplexity by {r['magnitude']:.2f}, "
            f"SparseGPT by {r['sparsegpt']:.2f} and Wanda by {r['wanda']:.2f}. From best to worst: **{ranking(d, 'ppl')}**.")


def not_paper(ours: pd.DataFrame, paper_model: str, advice: str) -> str:
    """Whether our column and the paper's measure the same thing; `advice` says what to compare if not."""
    if paper.is_paper_setting(ours):
        return (f"This build runs the paper's own setting ({paper_model} on WikiText-2), so the two columns measure the same "
                "thing and their difference is the reproduction error.")
    return (f"**Not the paper's model.** Ours is {model_label(ours['model'].iloc[0])} on `{ours['dataset'].iloc[0]}`, not "
            f"{paper_model} on WikiText-2: {advice}")


def vs_paper(ours: pd.DataFrame, cmp: pd.DataFrame, paper_model: str) -> str:
    """`not_paper`, and the order of the methods at 50% unstructured on each side."""
    pr = cmp[(cmp["method"] != "dense") & (cmp["structure"] == "unstructured")]
    return not_paper(ours, paper_model, "compare the ratios to dense and the order, not the perplexities themselves. Order at 50% "
                     f"unstructured in the paper: {ranking(pr, 'paper')}; ours: {ranking(pr, 'ours')}.")


def constraint_cost(cmp: pd.DataFrame) -> pd.DataFrame:
    """Perplexity under N:M over the same method's under unstructured 50%, the paper's and ours."""
    rows = []
    for m in ("magnitude", "sparsegpt", "wanda"):
        u = cmp[(cmp["method"] == m) & (cmp["structure"] == "unstructured")]
        for s in ("4:8", "2:4"):
            x = cmp[(cmp["method"] == m) & (cmp["structure"] == s)]
            if len(u) and len(x):
                p, o = x["paper"].iloc[0] / u["paper"].iloc[0], x["ours"].iloc[0] / u["ours"].iloc[0]
                rows.append({"method": m, "structure": s, "paper": p, "ours": o, "ours - paper": o - p})
    return pd.DataFrame(rows)


def nm(cost: pd.DataFrame, paper_model: str, model: str) -> str:
    w = cost[(cost["method"] == "wanda") & (cost["structure"] == "2:4")]
    p24 = paper.verified(paper.numbers(table="Table 3", structure="2:4", metric="wikitext2_ppl"))
    p24 = p24.pivot(index="model", columns="method", values="value")
    wins = ", ".join(m for m in p24.index if p24.loc[m, "sparsegpt"] < p24.loc[m, "wanda"]) or "none of its models"
    if w.empty:
        return ""
    return (f"Forcing 2:4 on Wanda multiplies its perplexity by {w['ours'].iloc[0]:.2f} on {model_label(model)}; the "
            f"paper's {paper_model} pays {w['paper'].iloc[0]:.2f}. At 2:4 the paper's SparseGPT beats Wanda on {wins}: when the mask "
            "has few choices, SparseGPT's weight update recovers more. Chapter 8 adds the same update to Wanda's mask.")


def nm_wide(nm: pd.DataFrame) -> pd.DataFrame:
    """Chapter 3's table: one row per method, perplexity and multiple of dense under each pattern."""
    from wanda_core.report.present import STRUCTURE_LABEL

    d = nm[nm["method"] != "dense"]
    cols = [s for s in STRUCTURE_LABEL if s in set(d["structure"])]
    parts = [d.pivot(index="method", columns="structure", values=v)[cols].rename(columns=lambda s: f"{h}, {STRUCTURE_LABEL[s]}")
             for v, h in (("ppl", "ppl"), ("ppl_ratio", "x dense"))]
    out = pd.concat(parts, axis=1).reindex(["magnitude", "sparsegpt", "wanda"])
    out.loc["dense"] = [float(nm.loc[nm["method"] == "dense", "ppl"].iloc[0]) if c.startswith("ppl") else 1.0 for c in out.columns]
    out = out.loc[["dense", "magnitude", "sparsegpt", "wanda"]]
    return out.rename(index=display_name).rename_axis(index="method", columns=None).reset_index()


def paper_ratios(structure: str):
    """The paper's Table 3 at 50% for one structure ("unstructured", "4:8", "2:4"), verified rows
    only, each cell 'ppl (x dense)' (wanda_core.study.paper.ratio_table), as a table."""
    what = " at 50% unstructured sparsity" if structure == "unstructured" else f", {structure} (50%)"
    return paper.ratio_table(structure).style.hide(axis="index").set_caption(
        f"The paper's Table 3{what}: WikiText-2 perplexity (multiple of dense), verified rows only")


def ratio_vs_paper(cmp: pd.DataFrame, ours_col: str, paper_col: str) -> None:
    """Perplexity / dense perplexity, ours and the paper's side by side, by pattern and method."""
    import seaborn as sns

    plt = pyplot()
    d = cmp[cmp["method"] != "dense"]
    long = pd.concat([d.assign(source=paper_col, ratio=d["paper / dense"]), d.assign(source=ours_col, ratio=d["ours / dense"])])
    long = long.dropna(subset=["ratio"]).assign(method=lambda x: x["method"].map(display_name),
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

    plt = pyplot()
    fig, ax = plt.subplots()
    meths = list(dict.fromkeys(pb["method"]))
    for k, m in enumerate(meths):  # shifted, so equal values do not hide each other
        sub = pb[pb["method"] == m]
        ax.plot(sub["block"] + (k - (len(meths) - 1) / 2) * 0.22, sub["sparsity"], marker="os^D"[k % 4], ls="none",
                ms=5, color=PALETTE.get(display_name(m)), label=display_name(m))
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

    plt = pyplot()
    dense = float(nm.loc[nm["method"] == "dense", "ppl"].iloc[0])
    d = nm[nm["method"] != "dense"].assign(method=lambda x: x["method"].map(display_name), pattern=lambda x: x["structure"].map(STRUCTURE_LABEL))
    fig, ax = plt.subplots()
    sns.barplot(data=d, x="pattern", y="ppl", hue="method", palette=PALETTE, ax=ax)
    ax.axhline(dense, color=PALETTE["Dense"], ls="--", lw=1, label=f"dense ({dense:,.2f})")
    ppl_axis(ax, nm, [*d["ppl"], dense])
    ax.set_xlabel("sparsity pattern (all remove 50% of the weights)")
    ax.set_title(f"{model_label(nm['model'].iloc[0])}: the cost of structure")
    ax.legend(fontsize=9)
    plt.show()
