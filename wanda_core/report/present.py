"""Presentation for the book's chapters: one label per model, method and column; one caption
builder; one table style and one figure style; "how this page was made" from the run records.

    from wanda_core.report import present
    P = present.setup(profile)                      # load the profile, set styles, quiet the logs
    present.table(t3, ["method", "ppl", "ppl_ratio"], caption=present.caption(t3))
    present.md(present.how_made(t3, P))

Frames come from wanda_core.study.experiments with plain keys ("wanda", "ppl_ratio"); everything a
reader sees is named here. The paper's numbers are in wanda_core.study.paper; each experiment's
figures, sentences and derived tables in the report module of the same name (wanda_core.report.tables
for wanda_core.study.experiments.tables, ...).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

METHOD_LABEL = {"dense": "Dense", "magnitude": "Magnitude", "sparsegpt": "SparseGPT", "wanda": "Wanda",
                "wanda-alpha": "Wanda (alpha variant)"}
PALETTE = {"Dense": "#555555", "Magnitude": "#d62728", "SparseGPT": "#1f77b4", "Wanda": "#2ca02c",
           "Wanda (alpha variant)": "#98df8a"}
# one name per model, everywhere in the book (the quantization is said in "how this page was made")
MODEL_LABEL = {"smollm2-135m": "SmolLM2-135M-Instruct", "gemma3-270m": "Gemma-3-270M",
               "tiny-llama": "tiny-llama (random weights)", "tiny-gpt-neox": "tiny-gpt-neox (random weights)",
               "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B-Instruct",
               "tiny-opt": "tiny-opt (random weights)", "tiny-gemma3": "tiny-gemma3 (random weights)"}
DATASET_LABEL = {"wiki": "wiki", "wikitext2": "WikiText-2", "c4": "C4"}
DATASET_LONG = {"wiki": "embedded Wikipedia lead sections (test split)", "wikitext2": "WikiText-2 test",
                "c4": "C4 (first train shard)"}
STRUCTURE_LABEL = {"-": "-", "unstructured": "unstructured 50%", "4:8": "4:8", "2:4": "2:4"}
GROUP_LABEL = {"layer": "per layer", "column": "per input (column)", "row": "per output (row)"}
# the experiments' configuration keys ("wanda 50%", zeroshot.label) -> what a reader sees
CONFIG_LABEL = {"dense": "Dense"} | {f"{m} {s}": f"{METHOD_LABEL[m]} {s}" for m in ("magnitude", "sparsegpt", "wanda")
                                     for s in ("50%", "2:4")}
UPDATE_LABEL = {"none": "none", "sequential": "sequential", "iterative": "iterative", "own": "its own (block by block)"}
# column keys of the experiments' frames -> (heading, number format)
COLUMNS = {
    "method": ("method", None), "structure": ("structure", None), "sparsity": ("target sparsity", "{:.0%}"),
    "actual_sparsity": ("actual sparsity", "{:.2%}"), "ppl": ("perplexity", "{:,.2f}"), "ppl_ratio": ("x dense", "{:.2f}x"),
    "prune_s": ("pruning time (s)", "{:.1f}"), "score_mask_s": ("score + mask (s)", "{:.3g}"), "score": ("score", None),
    "group": ("comparison group", None), "weight_update": ("weight update", None), "nsamples": ("calibration windows", "{:d}"),
    "seed": ("seed", "{:d}"), "eval_windows": ("eval windows", "{:d}"), "change": ("change vs no update", "{:+.1%}"),
    "min_block": ("min per block", "{:.2%}"), "max_block": ("max per block", "{:.2%}"), "min_linear": ("min per Linear", "{:.2%}"),
    "max_linear": ("max per Linear", "{:.2%}"), "zeroed": ("zeroed weights", "{:,}"), "share_of_all": ("share of all parameters", "{:.2%}"),
    "mean": ("mean ppl", "{:,.3f}"), "std": ("std", "{:,.3f}"), "min": ("min", "{:,.3f}"), "max": ("max", "{:,.3f}"),
    "range": ("range", "{:,.3f}"), "seeds": ("seeds", "{:d}"), "published": ("published method", None),
    "model": ("model", None), "dataset": ("evaluation data", None), "input": ("input j", "{:d}"), "weight": ("W_1j", None),
    "x_norm": ("||X_j||_2", None), "magnitude_score": ("magnitude score", None), "wanda_score": ("Wanda score", None),
    "magnitude": ("magnitude", None), "wanda": ("Wanda", None), "weights": ("weights", "{:,}"),
    "disagree": ("masks disagree", "{:.1%}"), "magnitude_top": ("magnitude prunes, top 5", "{:.1%}"),
    "wanda_top": ("Wanda prunes, top 5", "{:.1%}"), "channel": ("channel", "{:d}"),
    "blocks": ("blocks with it among their 5 largest", "{:d}"), "of_blocks": ("blocks", "{:d}"),
    "median_ratio": ("median norm / block median", "{:.1f}"), "linears": ("linear layers", "{:d}"),
    "groups": ("groups", "{:,}"), "bad_groups": ("groups with more than N non-zeros", "{:,}"),
    "config": ("configuration", None), "task": ("task", None), "n": ("examples", "{:,}"), "n_total": ("examples", "{:,}"),
    "acc": ("accuracy (%)", "{:.1f}"), "mean_acc": ("mean accuracy (%)", "{:.2f}"), "stderr": ("standard error", "{:.2f}"),
    "a": ("a", None), "b": ("b", None), "diff": ("a - b (points)", "{:+.2f}"), "resolved": ("resolved (> 2 stderr)", None),
    "params": ("parameters", "{:,.0f}"), "ppl_rel": ("x dense", "{:.3f}x"), "score_seconds": ("score + mask (s)", "{:.3g}"),
    "where": ("records", None), "load": ("CPU load (1 min)", "{:.1f}"), "wanda_over_sparsegpt": ("Wanda / SparseGPT", "{:.3f}"), "within_10pct": ("within 10%", None),
    "wanda_over_dense": ("Wanda / dense", "{:.3f}"), "within_1_28x": ("within 1.28x", None),
    "score_time_gap": ("SparseGPT / Wanda score time", "{:.1f}x"), "gap_over_10x": ("over 10x", None),
    "score_mask": ("score + mask (s)", "{:.3g}"), "total": ("total (s)", "{:.3g}"), "peak_memory_mb": ("prune peak memory (MB)", "{:,.0f}"),
    "paper_score_mask": ("paper: score + mask (s)", "{:.3g}"), "value": ("value", "{:g}"), "verified": ("verified", None),
    "source": ("source", None), "metric": ("metric", None), "setting": ("setting", None), "baseline": ("baseline", None),
    "ppl_gain": ("ppl gain (baseline - method)", "{:+.3f}"), "spread": ("seeds' spread", "{:.3f}"),
    "shown": ("gain shown", None), "beyond_spread": ("beyond 2x spread", None),
    "zeroshot_stderr": ("stderr of one run's mean (points)", "{:.2f}"), "zeroshot_n": ("examples per task", "{:,.0f}"),
}
VALUE_LABELS = {"model": MODEL_LABEL, "config": CONFIG_LABEL, "a": CONFIG_LABEL, "b": CONFIG_LABEL, "dataset": DATASET_LABEL, "method": METHOD_LABEL, "score": METHOD_LABEL, "group": GROUP_LABEL, "weight_update": UPDATE_LABEL,
                "structure": STRUCTURE_LABEL}


def setup(profile: str):
    """What every chapter does first: no progress bars or library chatter on the page, the book's
    figure style, and the profile (a wanda_core.study.profiles.Profile)."""
    import logging
    import os
    import warnings

    from wanda_core.study.profiles import load_profile

    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", message="IProgress not found")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    style()
    return load_profile(profile)


def style() -> None:
    """One figure style for the whole book."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.figsize": (7.5, 4.2), "figure.dpi": 110, "savefig.bbox": "tight"})


def md(text: str) -> None:
    """Display Markdown from a code cell (sentences and notes computed from records); an empty
    sentence (a report function with nothing to say) shows nothing."""
    from IPython.display import Markdown, display

    if text:
        display(Markdown(text))


def show(obj: Any) -> None:
    """Display a table or note; None (a report function's table with no rows to show) shows nothing."""
    from IPython.display import display

    if obj is not None:
        display(obj)


def pruned_runs(df: pd.DataFrame) -> pd.DataFrame:
    """An experiment's frame without its dense baseline row(s): the pruned runs only."""
    return df[df["method"] != "dense"]


def table(df: pd.DataFrame, columns: Iterable[str] | dict[str, str] | None = None, caption: str | None = None,
          formats: dict[str, str] | None = None, floatfmt: str = "{:,.2f}"):
    """The book's table: the chosen `columns` (a list of keys, or {key: heading}), values and
    headings labelled, numbers formatted by column (COLUMNS, then `formats`), no index."""
    cols = list(columns or df.columns)
    heads = {c: (columns[c] if isinstance(columns, dict) else COLUMNS.get(c, (c, None))[0]) for c in cols}
    d = df[cols].copy()
    for c, lab in VALUE_LABELS.items():
        if c in d and not pd.api.types.is_numeric_dtype(d[c]):
            d[c] = [lab.get(v, v) for v in d[c]]
    for c in d.columns:  # verdict columns (True / False / not measured) read as words
        if len(d[c].dropna()) and all(isinstance(v, (bool, np.bool_)) for v in d[c].dropna()):
            d[c] = d[c].map({True: "yes", False: "no"}).astype(object).where(d[c].notna(), "-")
    fmt = {c: COLUMNS[c][1] for c in cols if c in COLUMNS and COLUMNS[c][1]}
    fmt |= {c: floatfmt for c in d.select_dtypes("number").columns if c not in fmt}
    fmt |= formats or {}
    fmt = {heads[c]: f for c, f in fmt.items() if c in heads and pd.api.types.is_numeric_dtype(d[c])}
    s = d.rename(columns=heads).style.format(fmt, na_rep="-").hide(axis="index")
    div = df.index[df["status"] == "diverged"] if "status" in df else []
    num = [heads[c] for c in cols if pd.api.types.is_numeric_dtype(d[c])]
    if len(div) and num:  # a diverged run's missing numbers read "diverged", and the caption says where
        s = s.format({k: v for k, v in fmt.items() if k in num}, na_rep="diverged", subset=(div, num))
        caption = " ".join(x for x in (caption, diverged_note(df)) if x)
    return s.set_caption(caption) if caption else s


def diverged_note(df: pd.DataFrame) -> str:
    """'Diverged (a NaN or inf, not a number): Magnitude at 90%, first non-finite value (inf) in the
    evaluation loss, window 0.' for a frame's diverged runs; '' when none diverged."""
    if "status" not in df:
        return ""
    rows = df[df["status"] == "diverged"]
    if rows.empty:
        return ""
    what = []
    for r in rows.to_dict("records"):
        name = display_name(r.get("method", ""))
        if r.get("sparsity") and r.get("method") != "dense":
            name += f" at {r['sparsity']:.0%}" if r.get("structure") in (None, "unstructured") else f" {r['structure']}"
        what.append(f"{name}: {r.get('diverged_at') or 'an unknown place'}")
    return "Diverged (a NaN or inf, not a number): " + "; ".join(what) + "."


def mark_diverged(ax, df: pd.DataFrame, x: str, scale: float = 1.0, color_of=None) -> None:
    """Mark each diverged run of a line plot at the top of the axes, labelled "diverged", where a
    NaN would otherwise leave a gap (x: the frame's column on the x axis, times `scale`)."""
    if "status" not in df:
        return
    for r in df[df["status"] == "diverged"].to_dict("records"):
        xv = r[x] * scale
        c = color_of(r) if color_of else "black"
        ax.plot([xv], [0.97], marker="x", ms=8, color=c, transform=ax.get_xaxis_transform(), clip_on=False)
        ax.annotate("diverged", (xv, 0.97), xycoords=ax.get_xaxis_transform(), xytext=(0, -12),
                    textcoords="offset points", ha="center", fontsize=8, color=c)


def plus_minus(mean: pd.Series, spread: pd.Series, fmt: str = "{:,.2f}") -> pd.Series:
    """Cells 'mean ± spread' (a missing spread reads as 0), for tables of means over seeds or with intervals."""
    return mean.map(fmt.format) + " ± " + spread.fillna(0).map(fmt.format)


def display_name(key: str) -> str:
    """A method's label ('Wanda') from its key ('wanda')."""
    return METHOD_LABEL.get(key, key)


def model_label(name: str) -> str:
    """One readable name per model: 'SmolLM2-135M-Instruct', 'LLaMA-2-7B', else the last part of a path."""
    from wanda_core.study.paper import HUB_MODEL

    return MODEL_LABEL.get(name) or HUB_MODEL.get(name) or str(name).rstrip("/").split("/")[-1]


def dataset_label(name: str) -> str:
    return DATASET_LABEL.get(name, Path(str(name)).name)


def ours_label(df: pd.DataFrame) -> str:
    """Column heading for our numbers, e.g. 'ours (SmolLM2-135M-Instruct, wiki)'."""
    return f"ours ({model_label(df['model'].iloc[0])}, {dataset_label(df['dataset'].iloc[0])})"


def paper_label(model: str) -> str:
    return f"paper ({model}, WikiText-2)"


def caption(df: pd.DataFrame, sparsity: str | None = None) -> str:
    """What a table's numbers were made from: model, evaluation text and size, calibration (from the
    frame's rows), and the sparsity if given. The one caption builder of the book."""
    r = df.iloc[0]
    ev = df.dropna(subset=["dataset"]).drop_duplicates(["dataset", "eval_windows", "seqlen"])
    parts = [f"{model_label(r['model'])} ({r['params'] / 1e6:.0f}M parameters)",
             "perplexity on " + "; ".join(f"{DATASET_LONG.get(e.dataset, e.dataset)} (`{e.dataset}`, {e.eval_windows} "
                                          f"windows x {e.seqlen} tokens)" for e in ev.itertuples())]
    cal = df.dropna(subset=["nsamples"])
    if len(cal):
        ns, seeds = sorted({int(n) for n in cal["nsamples"]}), sorted({int(s) for s in cal["seed"]})
        parts.append(f"calibration {cal['calib'].iloc[0]}, {'/'.join(map(str, ns))} windows x {cal['seqlen'].iloc[0]} "
                     f"tokens, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    if sparsity:
        parts.append(f"sparsity {sparsity}")
    return "; ".join(parts)


def how_made(runs, P=None, extra: str = "") -> str:
    """Markdown: how a page's numbers were made, from the run records behind `runs` (a frame from
    wanda_core.study.experiments, whose records are read back from P's runs directory, or the records)."""
    from wanda_core.study.experiments.common import device, records

    recs = [r for r in (records(runs, P) if isinstance(runs, pd.DataFrame) else runs) if r]
    if not recs:
        return "_No run records._"
    r0, prov = recs[0], recs[0]["provenance"]
    evals = {ds: (v["windows"], v["seqlen"], v["tokens"]) for r in recs for ds, v in r["results"].get("ppl", {}).items()}
    v = prov["versions"]
    ids = sorted({r["id"] for r in recs})
    lines = [f"- **Model**: `{r0['model']['name']}` ({r0['model']['params'] / 1e6:.1f}M parameters; {r0['model']['source']})",
             "- **Evaluation**: " + "; ".join(f"`{ds}`: {w} windows x {s} tokens ({t:,} tokens)" for ds, (w, s, t) in evals.items())]
    cal = [r["calibration"] for r in recs if r.get("calibration")]
    if cal:
        lines.append(f"- **Calibration**: `{cal[0]['source']}`, {', '.join(map(str, sorted({c['nsamples'] for c in cal})))} "
                     f"windows of {cal[0]['seqlen']} tokens, seed(s) {', '.join(map(str, sorted({c['seed'] for c in cal})))} "
                     f"({cal[0]['sampler']} sampler; windows listed in each record)")
    lines += [f"- **Runs**: {len(recs)} run records ({', '.join(ids[:6])}{', ...' if len(ids) > 6 else ''}) under `runs/`",
              f"- **Device**: {device(prov['device'])}; torch {v.get('torch')}, transformers {v.get('transformers')}, "
              f"wanda_core {v.get('wanda_core')}; {prov['date'][:10]}"]
    return "\n".join(lines) + (f"\n- {extra}" if extra else "")


def ranking(df: pd.DataFrame, value: str, key: str = "method") -> str:
    """'Wanda < SparseGPT < Magnitude', ordered by `value` (lowest first), skipping missing values."""
    d = df.dropna(subset=[value]).sort_values(value)
    return " < ".join(display_name(k) for k in d[key])


def unverified_note(**filters: Any) -> str:
    """A sentence listing the paper's numbers left out because the CSV marks them unverified."""
    from wanda_core.study.paper import unverified

    un = unverified(table="Table 3", **filters)
    if un.empty:
        return ""
    return ("Left out because `data/paper_numbers.csv` marks them unverified (not confirmed from the paper itself): "
            + "; ".join(f"{r.model} {display_name(r.method)}{'' if r.structure == 'unstructured' else ' ' + r.structure} "
                        f"{r.value:.2f}" for r in un.itertuples()) + ".")


def vs_paper_table(cmp: pd.DataFrame, ours: pd.DataFrame, paper_model: str, what: str):
    """wanda_core.study.paper.vs_ours's frame as a table, its two sides named by model and text."""
    heads = {c: COLUMNS.get(c, (c,))[0] for c in cmp.columns} | {"paper": paper_label(paper_model), "ours": ours_label(ours)}
    return table(cmp, heads, caption=f"{what}: the paper's Table 3 ({paper_model}) beside ours ({caption(ours)})")
