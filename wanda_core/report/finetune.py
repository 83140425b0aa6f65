"""What the recovery chapter shows: its sentences, tables and figure, computed from
wanda_core.experiments.finetune.recovery's frames.

    from wanda_core import report
    out = finetune.recovery(P)
    ff.intro(P, out); ff.recovery_table(out); ff.figure(out); ff.verdict(out)
"""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report.present import METHOD_LABEL, STRUCTURE_LABEL, model_label

HOW_LABEL = {"lora": "LoRA", "masked": "masked dense"}


def intro(P, out: dict[str, pd.DataFrame]) -> str:
    s, d = out["summary"], out["dense"].iloc[0]
    if s.empty:
        return "_No fine-tuning run in this profile._"
    r = s.iloc[0]
    return (f"{len(s)} fine-tuning runs of {model_label(d['model'])}: {int(r['steps'])} steps of "
            f"{P.finetune_batch_size} windows x {P.finetune_seqlen} tokens ({int(r['tokens']):,} training tokens per run), "
            f"perplexity on {int(r['windows'])} evaluation windows (`{d['dataset']}`), dense {d['ppl']:.2f}. "
            f"Training took {s['train_s'].median():.0f} s per run (median).")


def recovery_table(out: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: perplexity before and after with the paired change, the gap closed, the sparsity check."""
    s = out["summary"]
    if s.empty:
        return s
    fmt = "{:,.2f}".format
    return pd.DataFrame({
        "pattern": s["structure"].map(lambda x: STRUCTURE_LABEL.get(x, x)),
        "method": s["method"].map(lambda x: METHOD_LABEL.get(x, x)),
        "fine-tuning": s["how"].map(HOW_LABEL),
        "pruned ppl": s["pruned"].map(fmt),
        "after ppl (95% CI)": [f"{a:,.2f} ({lo:,.2f}-{hi:,.2f})" for a, lo, hi in
                               zip(s["after"], s["after_low"], s["after_high"])],
        "after / before (paired 95% CI)": [f"{r:.3f} ({lo:.3f}-{hi:.3f})" for r, lo, hi in
                                           zip(s["ratio"], s["ratio_low"], s["ratio_high"])],
        "gap to dense closed": s["gap_closed"].map(lambda g: "-" if pd.isna(g) else f"{g:.0%}"),
        "zeros before -> after": [f"{b:,} -> {a:,}" for b, a in zip(s["zeros_before"], s["zeros_after"])],
        "sparsity if merged": s["merged_sparsity"].map(lambda m: "-" if pd.isna(m) else f"{m:.2%}"),
    })


def sparsity_check(out: dict[str, pd.DataFrame]) -> str:
    s = out["summary"]
    if s.empty:
        return ""
    held = (s["zeros_before"] == s["zeros_after"]).all()
    lora = s[s["how"] == "lora"]
    line = (f"Every run ends with exactly as many zero weights as it started with ({'yes' if held else '**no**'}: "
            f"{int((s['zeros_before'] == s['zeros_after']).sum())} of {len(s)} runs count for count).")
    if not lora.empty:
        line += (f" Merging a LoRA adapter into its base would leave {lora['merged_sparsity'].min():.2%} to "
                 f"{lora['merged_sparsity'].max():.2%} of the weights zero, against "
                 f"{lora['sparsity_after'].min():.2%} or more in the sparse base: a low-rank update is dense, "
                 "so the adapter has to stay separate to keep the sparsity.")
    return line


def verdict(out: dict[str, pd.DataFrame]) -> str:
    """Does fine-tuning erase the difference between the pruning methods, or keep it? Per pattern and
    way of training: the spread of perplexity across methods before and after, and whether the order holds."""
    s = out["summary"]
    if s.empty:
        return ""
    lines = []
    for (structure, how), g in s.groupby(["structure", "how"], sort=False):
        before = g.set_index("method")["pruned"]
        after = g.set_index("method")["after"]
        order_b = " < ".join(METHOD_LABEL.get(m, m) for m in before.sort_values().index)
        order_a = " < ".join(METHOD_LABEL.get(m, m) for m in after.sort_values().index)
        spread_b, spread_a = before.max() / before.min(), after.max() / after.min()
        kept = list(before.sort_values().index) == list(after.sort_values().index)
        lines.append(f"- **{STRUCTURE_LABEL.get(structure, structure)}, {HOW_LABEL[how]}**: worst / best method "
                     f"{spread_b:.2f}x before, {spread_a:.2f}x after; order before {order_b}, after {order_a} "
                     f"({'kept' if kept else 'changed'}). The difference is "
                     + ("narrowed" if spread_a < spread_b - 1e-3 else "widened" if spread_a > spread_b + 1e-3
                        else "unchanged") + ".")
    return "\n".join(lines)


def figure(out: dict[str, pd.DataFrame]) -> None:
    """Perplexity against training steps, one panel per pattern: a colour per method, solid LoRA,
    dashed masked dense; dense as a grey line."""
    plt = pyplot()
    c, d = out["curve"], out["dense"].iloc[0]
    if c.empty:
        return
    structures = list(dict.fromkeys(c["structure"]))
    fig, axes = plt.subplots(1, len(structures), figsize=(6 * len(structures), 4.2), squeeze=False)
    colors = {}
    for ax, structure in zip(axes[0], structures):
        for (method, how), g in c[c["structure"] == structure].groupby(["method", "how"], sort=False):
            kw = {"color": colors.get(method)}
            line = ax.plot(g["step"], g["ppl"], "o-" if how == "lora" else "s--",
                           label=f"{METHOD_LABEL.get(method, method)}, {HOW_LABEL[how]}", **kw)[0]
            colors.setdefault(method, line.get_color())
        ax.axhline(d["ppl"], color="grey", lw=1, label="dense")
        ax.set(yscale="log", xlabel="training steps", ylabel="perplexity (log scale)",
               title=STRUCTURE_LABEL.get(structure, structure))
        ax.legend(fontsize=7)
    plt.show()


def paper_rows(out: dict[str, pd.DataFrame]) -> str:
    p = out["paper"]
    if p.empty:
        return ("`data/paper_numbers.csv` holds no verified fine-tuning number, so none is shown beside ours. The "
                "paper's Section 5 reports LoRA and dense fine-tuning of LLaMA-7B; those numbers enter the book once "
                "they are checked against the paper and added to the CSV with their source.")
    return ""
