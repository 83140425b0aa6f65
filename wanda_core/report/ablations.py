"""Chapters 7 and 8's figures, sentences and derived tables (comparison group, weight update), from wanda_core.study.experiments.ablations."""
from __future__ import annotations

import pandas as pd
import numpy as np

from wanda_core.report.plotting import positive, ppl_axis, pyplot
from wanda_core.report.present import GROUP_LABEL, display_name, model_label, PALETTE, STRUCTURE_LABEL, table
from wanda_core.study import paper


def groups(cg: pd.DataFrame) -> str:
    t = {(s, g): p for s, g, p, m in zip(cg["score"], cg["group"], cg["ppl"], cg["method"]) if m != "dense"}
    best = {s: min(GROUP_LABEL, key=lambda g: t[s, g]) for s in ("magnitude", "wanda")}
    mc, wc = t["magnitude", "column"], t["wanda", "column"]
    same = abs(mc - wc) <= 1e-6 * max(wc, 1e-12)
    return "\n".join([
        f"- With the **Wanda** score the best group here is **{GROUP_LABEL[best['wanda']]}** ({t['wanda', best['wanda']]:.2f}); "
        f"with the **magnitude** score it is **{GROUP_LABEL[best['magnitude']]}** ({t['magnitude', best['magnitude']]:.2f}).",
        f"- Holding the group at *per output*, changing the score from magnitude to Wanda moves perplexity from "
        f"{t['magnitude', 'row']:.2f} to {t['wanda', 'row']:.2f} ({t['magnitude', 'row'] / t['wanda', 'row']:.2f}x).",
        f"- Holding the score at *Wanda*, changing the group from per layer to per output moves perplexity from "
        f"{t['wanda', 'layer']:.2f} to {t['wanda', 'row']:.2f} ({t['wanda', 'layer'] / t['wanda', 'row']:.2f}x).",
        f"- The control: per input, magnitude gives {mc:.4f} and Wanda {wc:.4f}, "
        + ("identical, as the argument above says they must be." if same else
           f"a relative difference of {abs(mc / wc - 1):.2%}, which can only come from ties in the scores (inputs that were "
           "never active, or equal quantized weights) broken differently.")])


def group_wide(cg: pd.DataFrame) -> pd.DataFrame:
    """Chapter 7's table: one row per score, one perplexity column per comparison group."""
    d = cg[cg["method"] != "dense"].pivot(index="score", columns="group", values="ppl")[list(GROUP_LABEL)]
    return d.rename(index=display_name, columns=GROUP_LABEL).rename_axis(index="score", columns=None).reset_index()


def updates(wu: pd.DataFrame) -> str:
    t = {(m, u, s): p for m, u, s, p in zip(wu["method"], wu["weight_update"], wu["structure"], wu["ppl"])}

    def change(m, u, s="unstructured"):
        return t[m, u, s] / t[m, "none", s] - 1

    lines = [f"- **{display_name(m)}** mask, 50 % unstructured: perplexity {t[m, 'none', 'unstructured']:.2f} without an update; "
             f"with it: sequential {change(m, 'sequential'):+.1%}, iterative {change(m, 'iterative'):+.1%}."
             for m in ("magnitude", "wanda")]
    lines.append(f"- **Wanda**, 2:4: {t['wanda', 'none', '2:4']:.2f} without an update, {t['wanda', 'sequential', '2:4']:.2f} "
                 f"with the sequential one ({change('wanda', 'sequential', '2:4'):+.1%}).")
    for s, name in (("unstructured", "50 % unstructured"), ("2:4", "2:4")):
        u = min((u for (m, u, s2) in t if m == "wanda" and s2 == s), key=lambda u: t["wanda", u, s])
        lines.append(f"- At {name}, the best Wanda variant (update: {u}) is {t['wanda', u, s] / t['sparsegpt', 'own', s] - 1:+.1%} "
                     f"from SparseGPT ({t['wanda', u, s]:.2f} vs {t['sparsegpt', 'own', s]:.2f}).")
    more = -change("wanda", "sequential", "2:4") > -change("wanda", "sequential")
    lines.append("- The sequential update helps Wanda " + ("more under 2:4 than under unstructured sparsity." if more
                                                           else "no more under 2:4 than under unstructured sparsity."))
    return "\n".join(lines)


def paper_ablation(word: str):
    """The paper's verified rows for an ablation whose table name contains `word` (a table), or a
    note that data/paper_numbers.csv has none (Markdown)."""
    from IPython.display import Markdown

    pn = paper.verified(paper.numbers())
    pn = pn[pn["table"].astype(str).str.contains(word, case=False)]
    if pn.empty:
        return Markdown(f"_No verified numbers for the {word} ablation in `data/paper_numbers.csv`._")
    return table(pn, caption=f"The paper's {word} ablation (verified rows of data/paper_numbers.csv)")


def group_bars(cg: pd.DataFrame) -> None:
    """Perplexity by comparison group (x) and score (hue), dense as a line."""
    import seaborn as sns

    plt = pyplot()
    dense = float(cg.loc[cg["method"] == "dense", "ppl"].iloc[0])
    d = cg[cg["method"] != "dense"].assign(score=lambda x: x["score"].map(display_name), group=lambda x: x["group"].map(GROUP_LABEL),
                                           ppl=lambda x: [positive(v) for v in x["ppl"]])
    fig, ax = plt.subplots()
    sns.barplot(data=d, x="group", y="ppl", hue="score", order=list(GROUP_LABEL.values()), palette=PALETTE, ax=ax)
    ax.axhline(positive(dense), color=PALETTE["Dense"], ls="--", lw=1.2, label="Dense")
    ppl_axis(ax, cg, [*d["ppl"], dense])
    ax.set_xlabel("comparison group (which weights compete for the kept half)")
    ax.set_title(f"{model_label(cg['model'].iloc[0])}, 50 % unstructured sparsity: score x comparison group")
    ax.legend(title="score")
    plt.show()


def update_bars(wu: pd.DataFrame) -> None:
    """Perplexity of each mask without and with the weight update, unstructured and 2:4 panels;
    SparseGPT and dense as lines."""
    import seaborn as sns

    plt = pyplot()
    dense = float(wu.loc[wu["method"] == "dense", "ppl"].iloc[0])
    d = wu[~wu["method"].isin(["dense", "sparsegpt"])].assign(mask=lambda x: x["method"].map(display_name),
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
    ppl_axis(axes[0], wu, [*d["ppl"], *wu["ppl"]])
    axes[1].set_ylabel("")
    fig.suptitle(f"{model_label(wu['model'].iloc[0])}: masks with and without SparseGPT's weight update", y=1.02)
    plt.show()
