"""Helpers the book's notebooks share: the paper's numbers, tables from run records, figure style,
and a "how this page was made" summary. No pruning logic here: only reading and formatting.

    from wanda_core.report import paper_numbers, ppl, frame, compare, how_made, style
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .profiles import repo_root

METHOD_ORDER = ["dense", "magnitude", "sparsegpt", "wanda", "wanda-alpha"]
METHOD_LABEL = {"dense": "Dense", "magnitude": "Magnitude", "sparsegpt": "SparseGPT", "wanda": "Wanda",
                "wanda-alpha": "Wanda (alpha variant)"}
PALETTE = {"Dense": "#555555", "Magnitude": "#d62728", "SparseGPT": "#1f77b4", "Wanda": "#2ca02c",
           "Wanda (alpha variant)": "#98df8a"}


def paper_numbers(**filters: Any) -> pd.DataFrame:
    """Rows of data/paper_numbers.csv (the paper's figures, each with its table and source).

    Filters are column=value (or column=[values]). Unverified rows are kept but flagged; tables
    in the book print only verified ones unless they say otherwise."""
    df = pd.read_csv(repo_root() / "data" / "paper_numbers.csv", dtype={"task": str})
    for k, v in filters.items():
        df = df[df[k].isin(v if isinstance(v, (list, tuple, set)) else [v])]
    return df.reset_index(drop=True)


def ppl(rec: dict, dataset: str | None = None) -> float:
    """The perplexity a record holds (the first evaluated dataset unless named)."""
    p = rec["results"]["ppl"]
    return p[dataset or next(iter(p))]["ppl"]


def frame(records: Iterable[dict], dataset: str | None = None) -> pd.DataFrame:
    """One row per record: method, structure, sparsity, group, update, calibration, ppl, times."""
    rows = []
    for r in records:
        c = r["config"]
        pr = r.get("prune") or {}
        row = {
            "method": METHOD_LABEL.get(c["method"], c["method"]),
            "structure": c["structure"] if c["method"] != "dense" else "-",
            "target sparsity": r["prune_fields"].get("sparsity", 0.0),
            "actual sparsity": (pr.get("sparsity") or {}).get("overall", 0.0),
            "score": r["prune_fields"].get("score"),
            "group": r["prune_fields"].get("group"),
            "weight update": c.get("weight_update", "none"),
            "nsamples": c["nsamples"] if r.get("calibration") else None,
            "seed": c["seed"] if r.get("calibration") else None,
            "ppl": ppl(r, dataset) if r["results"].get("ppl") else None,
            "prune s": (pr.get("seconds") or {}).get("total"),
            "score+mask s": (pr.get("seconds") or {}).get("score_mask"),
            "id": r["id"],
        }
        z = r["results"].get("zeroshot")
        if z:
            row["mean acc"] = z.get("mean_acc")
        rows.append(row)
    return pd.DataFrame(rows)


def compare(ours: pd.DataFrame, paper: pd.DataFrame, on: list[str], ours_col: str = "ppl",
            paper_col: str = "value") -> pd.DataFrame:
    """Ours beside the paper's, joined on `on`, with the difference and the ratio."""
    m = ours.merge(paper.rename(columns={paper_col: "paper"}), on=on, how="left")
    m = m.rename(columns={ours_col: "ours"})
    m["ours - paper"] = m["ours"] - m["paper"]
    return m


def style() -> None:
    """One figure style for the whole book."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.figsize": (7.5, 4.2), "figure.dpi": 110, "savefig.bbox": "tight"})


def how_made(records: Iterable[dict]) -> str:
    """A Markdown summary of how a page's numbers were made, from its records."""
    records = list(records)
    if not records:
        return "_No run records._"
    r0 = records[0]
    prov = r0["provenance"]
    calib = next((r["calibration"] for r in records if r.get("calibration")), None)
    evals = {ds: (v["windows"], v["seqlen"], v["tokens"]) for r in records for ds, v in r["results"].get("ppl", {}).items()}
    dev = prov["device"]
    lines = [
        f"- **Model**: `{r0['model']['name']}` ({r0['model']['params'] / 1e6:.1f}M parameters; {r0['model']['source']})",
        f"- **Evaluation**: " + "; ".join(f"`{ds}`: {w} windows x {s} tokens ({t:,} tokens)" for ds, (w, s, t) in evals.items()),
    ]
    if calib:
        seeds = sorted({r["calibration"]["seed"] for r in records if r.get("calibration")})
        ns = sorted({r["calibration"]["nsamples"] for r in records if r.get("calibration")})
        lines.append(f"- **Calibration**: `{calib['source']}`, {', '.join(map(str, ns))} windows of {calib['seqlen']} tokens, "
                     f"seed(s) {', '.join(map(str, seeds))} ({calib['sampler']} sampler; windows listed in each record)")
    v = prov["versions"]
    lines += [
        f"- **Runs**: {len(records)} run records ({', '.join(sorted({r['id'] for r in records})[:6])}{', ...' if len(records) > 6 else ''}) under `runs/`",
        f"- **Device**: {dev.get('type')} {dev.get('name', '')} ({dev.get('threads', '')} threads); "
        f"torch {v.get('torch')}, transformers {v.get('transformers')}, wanda_core {v.get('wanda_core')}; {prov['date'][:10]}",
    ]
    return "\n".join(lines)


def md(text: str):
    """Display Markdown from a code cell (tables and notes computed from records)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def table(df: pd.DataFrame, floatfmt: str = "{:.2f}", caption: str | None = None):
    """A pandas Styler with the book's number format and an optional caption."""
    s = df.style.format(floatfmt, subset=df.select_dtypes("number").columns, na_rep="-").hide(axis="index")
    return s.set_caption(caption) if caption else s


# --- Labels and paper-vs-ours tables (chapters 01-06) ------------------------------------------
# The paper's numbers are WikiText-2 perplexities of LLaMA models; ours come from whichever model
# and text the profile names. These helpers label both sides plainly and put them side by side.

MODEL_LABEL = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma-3-270M", "tiny-llama": "tiny-llama (random)",
               "tiny-gpt-neox": "tiny-gpt-neox (random)", "tiny-opt": "tiny-opt (random)"}
PAPER_MODEL = {"huggyllama/llama-7b": "LLaMA-7B", "huggyllama/llama-13b": "LLaMA-13B",
               "huggyllama/llama-30b": "LLaMA-30B", "huggyllama/llama-65b": "LLaMA-65B",
               "meta-llama/Llama-2-7b-hf": "LLaMA-2-7B", "meta-llama/Llama-2-13b-hf": "LLaMA-2-13B",
               "meta-llama/Llama-2-70b-hf": "LLaMA-2-70B"}
DATASET_LABEL = {"wiki": "wiki", "wikitext2": "WikiText-2", "c4": "C4"}
STRUCTURE_ORDER = ["-", "unstructured", "4:8", "2:4"]


def _name(rec_or_name: Any) -> str:
    return rec_or_name["config"]["model"] if isinstance(rec_or_name, dict) else str(rec_or_name)


def model_label(rec_or_name: Any) -> str:
    """A short readable model name: 'SmolLM2-135M', 'LLaMA-2-7B', or the last part of a path/hub id."""
    n = _name(rec_or_name)
    return MODEL_LABEL.get(n) or PAPER_MODEL.get(n) or n.rstrip("/").split("/")[-1]


def dataset_label(rec: dict, dataset: str | None = None) -> str:
    p = rec["results"].get("ppl") or {}
    ds = dataset or next(iter(p), rec["config"]["eval"][0])
    return DATASET_LABEL.get(ds, Path(str(ds)).name)


def ours_label(rec: dict, dataset: str | None = None) -> str:
    """Column label for our numbers, e.g. 'ours (SmolLM2-135M, wiki)'."""
    return f"ours ({model_label(rec)}, {dataset_label(rec, dataset)})"


def paper_label(paper_model: str, dataset: str = "WikiText-2") -> str:
    """Column label for the paper's numbers, e.g. 'paper (LLaMA-2-7B, WikiText-2)'."""
    return f"paper ({paper_model}, {dataset})"


def paper_model_for(rec_or_name: Any, default: str = "LLaMA-2-7B") -> str:
    """The paper's model matching ours (the paper profile), else `default` (the most complete
    verified rows in data/paper_numbers.csv are LLaMA-2-7B's)."""
    return PAPER_MODEL.get(_name(rec_or_name), default)


def is_paper_setting(rec: dict) -> bool:
    """True when the record's model is one of the paper's and it was evaluated on WikiText-2."""
    return _name(rec) in PAPER_MODEL and "wikitext2" in (rec["results"].get("ppl") or {})


def setting(records: Iterable[dict], dataset: str | None = None) -> str:
    """One line saying model, evaluation data and calibration of a set of records (table captions)."""
    records = list(records)
    r0 = records[0]
    p = r0["results"].get("ppl") or {}
    ds = dataset or next(iter(p), None)
    parts = [f"model {model_label(r0)}"]
    if ds:
        ev = {(r["results"]["ppl"][ds]["windows"], r["results"]["ppl"][ds]["seqlen"]) for r in records
              if ds in r["results"].get("ppl", {})}
        parts.append(f"perplexity on {DATASET_LABEL.get(ds, ds)} ("
                     + "; ".join(f"{w} windows x {s} tokens" for w, s in sorted(ev)) + ")")
    cal = [r["calibration"] for r in records if r.get("calibration")]
    if cal:
        ns = sorted({c["nsamples"] for c in cal})
        seeds = sorted({c["seed"] for c in cal})
        parts.append(f"calibration {cal[0]['source']}, {'/'.join(map(str, ns))} windows x {cal[0]['seqlen']} tokens, "
                     f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return "; ".join(parts)


def sparsity_label(rec: dict) -> str:
    """'50% unstructured', '2:4 (50%)' or 'dense'."""
    c = rec["config"]
    if c["method"] == "dense":
        return "dense"
    s = rec["prune_fields"]["sparsity"]
    return f"{c['structure']} ({s:.0%})" if c["structure"] != "unstructured" else f"{s:.0%} unstructured"


def per_block_sparsity(records: Iterable[dict]) -> pd.DataFrame:
    """Long table: method, structure, block, sparsity (fraction of zeros among the block's Linears)."""
    rows = []
    for r in records:
        sp = ((r.get("prune") or {}).get("sparsity") or {})
        for b, s in enumerate(sp.get("per_block", [])):
            rows.append({"method": METHOD_LABEL.get(r["config"]["method"], r["config"]["method"]),
                         "structure": r["config"]["structure"] if r["config"]["method"] != "dense" else "-",
                         "block": b, "sparsity": s})
    return pd.DataFrame(rows, columns=["method", "structure", "block", "sparsity"])


def sparsity_check(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record: target, overall achieved, and the lowest/highest per-block and per-Linear sparsity."""
    rows = []
    for r in records:
        sp = ((r.get("prune") or {}).get("sparsity") or {})
        pb, pl = sp.get("per_block") or [0.0], list((sp.get("per_linear") or {"-": 0.0}).values())
        rows.append({"method": METHOD_LABEL.get(r["config"]["method"], r["config"]["method"]),
                     "structure": r["config"]["structure"] if r["config"]["method"] != "dense" else "-",
                     "target": r["prune_fields"].get("sparsity", 0.0), "achieved": sp.get("overall", 0.0),
                     "min per block": min(pb), "max per block": max(pb),
                     "min per Linear": min(pl), "max per Linear": max(pl),
                     "zeroed weights": sp.get("pruned_params", 0), "prunable weights": sp.get("prunable_params", 0)})
    return pd.DataFrame(rows)


def ppl_vs_paper(records: Iterable[dict], paper_model: str, dataset: str | None = None,
                 verified_only: bool = True) -> pd.DataFrame:
    """Our perplexities beside the paper's (Table 3, WikiText-2) for the same method and structure.

    Columns: structure, method, paper, ours, ours - paper, paper / dense, ours / dense, and the
    difference of the two ratios. The ratio to the dense model is the comparable number when the
    models differ. Paper cells are empty where data/paper_numbers.csv has no (verified) value."""
    records = list(records)
    pn = paper_numbers(table="Table 3", model=paper_model, metric="wikitext2_ppl")
    if verified_only:
        pn = pn[pn["verified"] == "yes"]
    paper = {("-" if m == "dense" else s, m): v for s, m, v in zip(pn["structure"], pn["method"], pn["value"])}
    ours = {}
    for r in records:
        c = r["config"]
        ours[("-" if c["method"] == "dense" else c["structure"], c["method"])] = ppl(r, dataset)
    pd_dense, od_dense = paper.get(("-", "dense")), ours.get(("-", "dense"))
    rows = []
    for key in sorted(ours, key=lambda k: (STRUCTURE_ORDER.index(k[0]) if k[0] in STRUCTURE_ORDER else 99,
                                           METHOD_ORDER.index(k[1]) if k[1] in METHOD_ORDER else 99)):
        p, o = paper.get(key), ours[key]
        pr = p / pd_dense if p is not None and pd_dense else None
        orr = o / od_dense if od_dense else None
        rows.append({"structure": key[0], "method": METHOD_LABEL.get(key[1], key[1]), "paper": p, "ours": o,
                     "ours - paper": None if p is None else o - p, "paper / dense": pr, "ours / dense": orr,
                     "ratio: ours - paper": None if pr is None or orr is None else orr - pr})
    df = pd.DataFrame(rows)
    for col in ("paper", "ours - paper", "paper / dense", "ratio: ours - paper"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def paper_ratio_table(structure: str = "unstructured", verified_only: bool = True) -> pd.DataFrame:
    """The paper's Table 3 for one structure at 50%: one row per method, one column per LLaMA
    model, each cell 'ppl (x dense)'; only verified rows unless told otherwise."""
    pn = paper_numbers(table="Table 3", metric="wikitext2_ppl")
    if verified_only:
        pn = pn[pn["verified"] == "yes"]
    dense = pn[pn["method"] == "dense"].set_index("model")["value"]
    sub = pn[(pn["structure"] == structure) | (pn["method"] == "dense")]
    models = [m for m in ["LLaMA-7B", "LLaMA-13B", "LLaMA-2-7B", "LLaMA-2-13B", "LLaMA-2-70B"] if m in set(sub["model"])]
    out = {}
    for m in METHOD_ORDER:
        row = {}
        for mod in models:
            v = sub[(sub["model"] == mod) & (sub["method"] == m)]["value"]
            if len(v):
                val = float(v.iloc[0])
                row[mod] = f"{val:.2f}" + (f" ({val / dense[mod]:.2f}x)" if m != "dense" and mod in dense else "")
            else:
                row[mod] = "-"
        if any(x != "-" for x in row.values()):
            out[METHOD_LABEL[m]] = row
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "method"
    return df.reset_index()


def unverified(table: str = "Table 3", **filters: Any) -> pd.DataFrame:
    """The rows of data/paper_numbers.csv marked unverified (left out of the book's comparisons)."""
    df = paper_numbers(table=table, **filters)
    return df[df["verified"] != "yes"].reset_index(drop=True)


def ranking(df: pd.DataFrame, value: str, label: str = "method") -> str:
    """'Wanda < SparseGPT < Magnitude' ordered by `value` (lowest first), skipping missing values."""
    d = df.dropna(subset=[value]).sort_values(value)
    return " < ".join(map(str, d[label]))
