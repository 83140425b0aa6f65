"""Chapters 5 and 6's figures, sentences and derived tables (sparsity sweep, calibration size and seed), from wanda_core.study.experiments.sweeps."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report import tables
from wanda_core.report.present import caption, dataset_label, display_name, mark_diverged, model_label, PALETTE, paper_label, table, vs_paper_table
from wanda_core.study import paper


def sweep(sw: pd.DataFrame, bd: pd.DataFrame) -> str:
    top = float(bd["top"].iloc[0])
    b = bd.set_index("method")

    def at(s):
        return f"at no sparsity up to {top:.0%}" if pd.isna(s) else f"from {s:.0%} on"

    lines = [f"- **{display_name(m)}**: above twice the dense perplexity {at(r['above_2x'])}, above ten times {at(r['above_10x'])}."
             for m, r in b.iterrows()]
    mag, wan = b.loc["magnitude", "above_2x"], b.loc["wanda", "above_2x"]
    if not pd.isna(mag) and (pd.isna(wan) or wan > mag):
        lines.append(f"- Wanda tolerates {'at least ' if pd.isna(wan) else ''}{((top if pd.isna(wan) else wan) - mag) * 100:.0f} "
                     "percentage points more sparsity than magnitude pruning before its perplexity doubles.")
    piv = sw[sw["method"] != "dense"].pivot(index="sparsity", columns="method", values="ppl")
    gap = piv["magnitude"] / piv["wanda"]
    lines.append(f"- The gap is widest at {float(gap.idxmax()):.0%}, where magnitude pruning's perplexity is "
                 f"{float(gap.max()):,.1f} times Wanda's.")
    better = [f"{s:.0%}" for s in piv.index if piv.loc[s, "sparsegpt"] < piv.loc[s, "wanda"]]
    lines.append("- SparseGPT, which updates the remaining weights, is below Wanda at "
                 + (", ".join(better) or "no sparsity of the sweep") + ".")
    return "\n".join(lines)


def sweep_table(sw: pd.DataFrame) -> pd.DataFrame:
    """Wide: one row per sparsity, each method's perplexity and its multiple of dense, magnitude / Wanda."""
    d = sw[sw["method"] != "dense"]
    piv = d.pivot(index="sparsity", columns="method", values="ppl")[["magnitude", "sparsegpt", "wanda"]]
    rat = d.pivot(index="sparsity", columns="method", values="ppl_ratio")[piv.columns]
    out = pd.concat([piv.rename(columns=display_name), rat.rename(columns=lambda m: f"{display_name(m)} / dense")], axis=1)
    out["Magnitude / Wanda"] = piv["magnitude"] / piv["wanda"]
    return out.reset_index()


def _at_half(sw: pd.DataFrame) -> pd.DataFrame:
    """The sweep's dense run and its runs at 50%, the sparsity of the paper's Table 3."""
    return sw[(sw["method"] == "dense") | (sw["sparsity"] == 0.5)]


def half_vs_paper_table(sw: pd.DataFrame):
    """The sweep's 50% runs beside the paper's Table 3 (a table); None when the sweep has no 50% point."""
    at50, paper_model = _at_half(sw), paper.model_for(sw)
    if len(at50) < 2:
        return None
    return vs_paper_table(paper.vs_ours(at50, paper_model), sw, paper_model, "At 50% unstructured")


def half_vs_paper(sw: pd.DataFrame) -> str:
    """Whether the sweep's 50% runs compare with the paper's, and the methods' order on each side;
    or that the sweep has no 50% point to compare."""
    at50, paper_model = _at_half(sw), paper.model_for(sw)
    if len(at50) < 2:
        return "The profile's sweep does not include 50%, so there is no point to set beside the paper's Table 3."
    return tables.vs_paper(sw, paper.vs_ours(at50, paper_model), paper_model)


def calibration(spread: pd.DataFrame) -> str:
    lo, hi = spread["nsamples"].min(), spread["nsamples"].max()

    def win(n):
        return f"{n} window" + ("" if n == 1 else "s")

    lines, cost = [], {}
    for m, g in spread.groupby("method", sort=False):
        a, b = g[g["nsamples"] == lo].iloc[0], g[g["nsamples"] == hi].iloc[0]
        cost[display_name(m)] = a["mean"] / b["mean"]
        if a["std"] == 0:
            lines.append(f"- **{display_name(m)}**: with {win(lo)}, {a['mean']:,.3f} (all {int(a['seeds'])} seeds equal); with "
                         f"{win(hi)}, {b['mean']:,.3f} ± {b['std']:,.3f}.")
            continue
        shrink = f"the standard deviation shrinks {a['std'] / b['std']:.1f}-fold" if b["std"] > 0 else "the spread vanishes"
        lines.append(f"- **{display_name(m)}**: with {win(lo)}, {a['mean']:,.3f} ± {a['std']:,.3f} (std over {int(a['seeds'])} seeds; "
                     f"min {a['min']:,.3f}, max {a['max']:,.3f}); with {win(hi)}, {b['mean']:,.3f} ± {b['std']:,.3f} (min "
                     f"{b['min']:,.3f}, max {b['max']:,.3f}): {shrink}. Going from {win(lo)} to {hi} changes the mean by "
                     f"{b['mean'] - a['mean']:+,.3f}, {abs(b['mean'] - a['mean']) / a['std']:.1f} times the {lo}-window std.")
    if spread["seeds"].max() < 2:
        lines.append("- The profile has a single seed, so no spread can be measured; add seeds to `seeds` in the profile.")
    lines.append(f"- Cost of having only {win(lo)} instead of {hi} (ratio of mean perplexities): "
                 + ", ".join(f"{m} {v:.3f}x" for m, v in cost.items()) + ".")
    return "\n".join(lines)


def calibration_vs_paper(cal: pd.DataFrame) -> pd.DataFrame:
    """Wanda with one calibration window and with the most, the paper's LLaMA-7B points (issue #19
    and Table 3) beside ours (mean over seeds, and the first seed alone); empty if the CSV lacks them."""
    pn = paper.verified(paper.numbers(model="LLaMA-7B", method="wanda", structure="unstructured", sparsity=0.5))
    p1 = pn.loc[pn["metric"] == "wikitext2_ppl_1_calib_window", "value"]
    p128 = pn.loc[(pn["metric"] == "wikitext2_ppl") & (pn["table"] == "Table 3"), "value"]
    w = cal[cal["method"] == "wanda"]
    if p1.empty or p128.empty or w.empty:
        return pd.DataFrame()
    hi, s0 = int(w["nsamples"].max()), int(w["seed"].min())

    def ours(n, seed=None):
        d = w[(w["nsamples"] == n) & ((w["seed"] == seed) if seed is not None else True)]
        return float(d["ppl"].mean()) if len(d) else float("nan")

    p1, p128 = float(p1.iloc[0]), float(p128.iloc[0])
    rows = [("1 calibration window", p1, ours(1), ours(1, s0)),
            (f"most windows (paper 128, ours {hi})", p128, ours(hi), ours(hi, s0))]
    rows.append(("ratio: 1 window / most windows", p1 / p128, rows[0][2] / rows[1][2], rows[0][3] / rows[1][3]))
    df = pd.DataFrame(rows, columns=["Wanda, 50% unstructured", paper_label("LLaMA-7B"), "ours, mean of seeds", f"ours, seed {s0}"])
    df.insert(3, "ours - paper", df.iloc[:, 2] - df.iloc[:, 1])
    return df


def few_windows_table(cal: pd.DataFrame):
    """`calibration_vs_paper` as a table, captioned with what our runs were made from; None when
    data/paper_numbers.csv lacks the paper's points."""
    few = calibration_vs_paper(cal)
    if few.empty:
        return None
    return table(few, floatfmt="{:,.3f}", caption="Few calibration windows: the paper (LLaMA-7B, issue #19 "
                 f"and Table 3) beside ours ({caption(cal)})")


def few_windows(cal: pd.DataFrame) -> str:
    """What `few_windows_table` compares (only the ratio, unless this is the paper's setting), or
    that there is nothing to compare."""
    if calibration_vs_paper(cal).empty:
        return "`data/paper_numbers.csv` lacks the verified single-window point, so there is nothing to set beside ours."
    return tables.not_paper(cal, "LLaMA-7B", "only the last row, the ratio, is comparable.")


def sparsity_curve(sw: pd.DataFrame) -> None:
    """Perplexity against unstructured sparsity, one line per method, dense as a line (log y)."""
    plt = pyplot()
    dense = float(sw.loc[sw["method"] == "dense", "ppl"].iloc[0])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for m, sub in sw[sw["method"] != "dense"].groupby("method", sort=False):
        sub = sub.sort_values("sparsity")
        ax.plot(100 * sub["sparsity"], sub["ppl"], marker="o", ms=4, color=PALETTE[display_name(m)], label=display_name(m))
    ax.axhline(dense, color=PALETTE["Dense"], ls="--", lw=1, label=f"dense ({dense:,.2f})")
    ax.set_yscale("log")
    mark_diverged(ax, sw[sw["method"] != "dense"], "sparsity", 100, lambda r: PALETTE[display_name(r["method"])])
    ax.set_xlabel("sparsity: share of each pruned layer's weights set to zero (%)")
    ax.set_ylabel(f"perplexity on {dataset_label(sw['dataset'].iloc[0])} (log scale)")
    ax.set_title(f"{model_label(sw['model'].iloc[0])}, unstructured pruning")
    ax.legend(fontsize=9)
    plt.show()


def calibration_curves(spread: pd.DataFrame, cal: pd.DataFrame) -> None:
    """Mean ± std (band: min to max) over seeds against calibration windows, and the std alone."""
    plt = pyplot()
    dense = float(cal.loc[cal["method"] == "dense", "ppl"].iloc[0])
    sizes = sorted(spread["nsamples"].unique())
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    for m, s in spread.groupby("method", sort=False):
        s, c = s.sort_values("nsamples"), PALETTE[display_name(m)]
        ax.fill_between(s["nsamples"], s["min"], s["max"], color=c, alpha=0.18, lw=0)
        ax.errorbar(s["nsamples"], s["mean"], yerr=s["std"], color=c, marker="o", ms=4, capsize=3,
                    label=f"{display_name(m)}: mean ± 1 std (band: min to max)")
        ax2.plot(s["nsamples"], s["std"], color=c, marker="o", ms=4, label=display_name(m))
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
