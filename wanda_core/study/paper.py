"""The paper's numbers: read from data/paper_numbers.csv only, each row with its source and whether
it was verified. Nothing here is typed by hand; tables of the book use verified rows only.

    from wanda_core.study import paper
    paper.numbers(table="Table 3", model="LLaMA-2-7B")      # rows, filtered column=value
    paper.value(paper.numbers(), "LLaMA-7B", "wanda")         # 7.26 (verified), or None
    paper.vs_ours(t3, "LLaMA-2-7B")                           # ours beside the paper's, with ratios to dense
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

import pandas as pd

from wanda_core.paths import repo_root

METHOD_ORDER = ("dense", "magnitude", "sparsegpt", "wanda", "wanda-alpha")
STRUCTURE_ORDER = ("-", "unstructured", "4:8", "2:4")
# hub ids of the paper's models -> the paper's names (a build that runs one compares with it directly)
HUB_MODEL = {"huggyllama/llama-7b": "LLaMA-7B", "huggyllama/llama-13b": "LLaMA-13B", "huggyllama/llama-30b": "LLaMA-30B",
             "huggyllama/llama-65b": "LLaMA-65B", "meta-llama/Llama-2-7b-hf": "LLaMA-2-7B",
             "meta-llama/Llama-2-13b-hf": "LLaMA-2-13B", "meta-llama/Llama-2-70b-hf": "LLaMA-2-70B"}
DEFAULT_MODEL = "LLaMA-2-7B"  # the paper's model with the most complete verified Table 3 row


def numbers(**filters: Any) -> pd.DataFrame:
    """Rows of data/paper_numbers.csv; filters are column=value or column=[values]."""
    df = pd.read_csv(repo_root() / "data" / "paper_numbers.csv", dtype={"task": str})
    for k, v in filters.items():
        df = df[df[k].isin(v if isinstance(v, (list, tuple, set)) else [v])]
    return df.reset_index(drop=True)


def verified(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["verified"].astype(str).str.lower() == "yes"].reset_index(drop=True)


def unverified(**filters: Any) -> pd.DataFrame:
    """The rows not checked against a source (left out of every comparison of the book)."""
    df = numbers(**filters)
    return df[df["verified"].astype(str).str.lower() != "yes"].reset_index(drop=True)


def value(df: pd.DataFrame, model: str, method: str, structure: str = "unstructured", sparsity: float = 0.5,
          metric: str = "wikitext2_ppl") -> float | None:
    """One verified number of `df` (rows of the CSV), or None if it is not there."""
    d = verified(df)
    d = d[(d["model"] == model) & (d["method"] == method) & (d["structure"] == structure) & (d["metric"] == metric)]
    d = d[(d["sparsity"] - (0.0 if method == "dense" else sparsity)).abs() < 1e-9]
    return None if d.empty else float(d["value"].iloc[0])


def model_size(name: str) -> float:
    """Billions of parameters from a name such as LLaMA-2-13B (inf when there is none)."""
    m = re.search(r"(\d+(?:\.\d+)?)B\b", name)
    return float(m.group(1)) if m else math.inf


def sorted_models(df: pd.DataFrame, metric: str = "wikitext2_ppl") -> list[str]:
    """The models with a verified `metric` in `df`, smallest first."""
    d = verified(df)
    return sorted(d.loc[d["metric"] == metric, "model"].unique(), key=model_size)


def reference_model(df: pd.DataFrame, need: Iterable[tuple[str, str]]) -> str | None:
    """The smallest model with a verified Table 3 number for every (method, structure) in `need`."""
    need = list(need)
    return next((m for m in sorted_models(df) if all(value(df, m, *k) is not None for k in need)), None)


def model_for(ours: pd.DataFrame) -> str:
    """The paper's model to set beside a frame: the same one if we run it, else LLaMA-2-7B."""
    return HUB_MODEL.get(ours["model"].iloc[0], DEFAULT_MODEL)


def is_paper_setting(ours: pd.DataFrame) -> bool:
    """True when the frame's runs are the paper's model on the paper's text."""
    return ours["model"].iloc[0] in HUB_MODEL and ours["dataset"].iloc[0] == "wikitext2"


def vs_ours(ours: pd.DataFrame, model: str) -> pd.DataFrame:
    """Our perplexities beside the paper's Table 3 (WikiText-2) for the same method and structure:
    structure, method, paper, ours, ours - paper, paper / dense, ours / dense, and the difference of
    the two ratios (the comparable number when the models differ). Paper cells are NaN where the
    CSV has no verified value."""
    pn = numbers(table="Table 3", model=model, metric="wikitext2_ppl")
    rows = []
    for m, s, o in zip(ours["method"], ours["structure"], ours["ppl"]):
        p = value(pn, model, m, "unstructured" if m == "dense" else s)
        rows.append({"structure": s, "method": m, "paper": p, "ours": o})
    df = pd.DataFrame(rows).astype({"paper": float})
    df["ours - paper"] = df["ours"] - df["paper"]
    for col in ("paper", "ours"):
        dense = df.loc[df["method"] == "dense", col]
        df[f"{col} / dense"] = df[col] / (float(dense.iloc[0]) if len(dense) else float("nan"))
    df["ratio: ours - paper"] = df["ours / dense"] - df["paper / dense"]
    key = [(STRUCTURE_ORDER.index(s) if s in STRUCTURE_ORDER else 99, METHOD_ORDER.index(m) if m in METHOD_ORDER else 99)
           for s, m in zip(df["structure"], df["method"])]
    return df.iloc[sorted(range(len(df)), key=key.__getitem__)].reset_index(drop=True)


def ratio_table(structure: str = "unstructured") -> pd.DataFrame:
    """The paper's Table 3 at 50% for one structure, verified rows only: one row per method, one
    column per LLaMA model, each cell 'ppl (x dense)'."""
    pn = verified(numbers(table="Table 3", metric="wikitext2_ppl"))
    dense = pn[pn["method"] == "dense"].set_index("model")["value"]
    sub = pn[(pn["structure"] == structure) | (pn["method"] == "dense")]
    models = sorted(set(sub["model"]), key=lambda m: ("LLaMA-2" in m, model_size(m)))  # LLaMA, then LLaMA-2
    rows = []
    for meth in METHOD_ORDER:
        row = {"method": meth}
        for mod in models:
            v = sub[(sub["model"] == mod) & (sub["method"] == meth)]["value"]
            val = float(v.iloc[0]) if len(v) else None
            row[mod] = "-" if val is None else f"{val:.2f}" + (f" ({val / dense[mod]:.2f}x)" if meth != "dense" and mod in dense else "")
        if any(x != "-" for k, x in row.items() if k != "method"):
            rows.append(row)
    return pd.DataFrame(rows)
