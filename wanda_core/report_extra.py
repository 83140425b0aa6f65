"""More helpers for the book's notebooks (chapters 7, 8, 9 and 11): find finished run records
without re-running them, label tables with what they were made from, pick the paper's numbers,
and estimate operation counts. Reading and formatting only: no pruning logic here.

    from wanda_core import report_extra as rx
    rec = rx.get(cfg, P["runs_dir"], need="prune")   # the stored record, or run(cfg) if it is missing
    rx.context([rec])                                # "model ..., perplexity on ..., calibration ..."
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .records import RECORD_VERSION, read_json

MODEL_LABEL = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Q4_1 weights dequantized to float32)",
    "gemma3-270m": "Gemma-3-270M (Q4_K_M weights dequantized to float32)",
    "tiny-llama": "tiny random LLaMA (smoke test; meaningless numbers)",
    "tiny-gpt-neox": "tiny random GPT-NeoX (smoke test; meaningless numbers)",
    "tiny-opt": "tiny random OPT (smoke test; meaningless numbers)",
}
DATA_LABEL = {"wiki": "embedded Wikipedia lead sections (test split)", "wikitext2": "WikiText-2 test",
              "c4": "C4 (first train shard)"}


# --- records ---------------------------------------------------------------------------------
def stored(cfg, runs_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The finished record for `cfg` in `runs_dir` (found by its hash), or None. Never runs anything."""
    from .runner import load_record

    return load_record(cfg.validate(), runs_dir)


def has(rec: dict[str, Any] | None, need: str = "ppl", dataset: str | None = None) -> bool:
    """Whether a record holds what a page needs: "prune" (its pruning report) or "ppl"."""
    if rec is None:
        return False
    if need == "prune":
        return rec["prune_fields"].get("method") == "dense" or bool((rec.get("prune") or {}).get("seconds"))
    if need == "ppl":
        p = rec.get("results", {}).get("ppl", {})
        return bool(p) and (dataset is None or dataset in p)
    raise ValueError(f"unknown need {need!r}; valid: prune, ppl")


def get(cfg, runs_dir: str | os.PathLike, need: str = "ppl") -> dict[str, Any]:
    """The stored record for `cfg` if it already holds `need`, else `run(cfg)` (quietly).

    Unlike `run`, a stored perplexity is accepted whatever number of evaluation windows it used
    (read it with `ppl_windows`), so pages that only read other chapters' records never redo them."""
    from .runner import run

    rec = stored(cfg, runs_dir)
    if has(rec, need, cfg.eval[0] if need == "ppl" else None):
        return rec
    return run(cfg, runs_dir, progress=False)


def ppl_windows(rec: dict[str, Any], dataset: str | None = None) -> tuple[float, int]:
    """(perplexity, evaluation windows) of a record."""
    p = rec["results"]["ppl"]
    v = p[dataset or next(iter(p))]
    return v["ppl"], v["windows"]


def scan(runs_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished record in `runs_dir` (any configuration)."""
    out = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        rec = read_json(path)
        if rec and rec.get("status") == "complete" and rec.get("record_version") == RECORD_VERSION:
            out.append(rec)
    return out


# --- labels ----------------------------------------------------------------------------------
def model_label(rec: dict[str, Any]) -> str:
    name = rec["model"]["name"]
    return f"{MODEL_LABEL.get(name, name)}, {rec['model']['params'] / 1e6:.0f}M parameters"


def eval_label(records: Iterable[dict[str, Any]]) -> str:
    seen: dict[str, set] = {}
    for r in records:
        for ds, v in r.get("results", {}).get("ppl", {}).items():
            seen.setdefault(ds, set()).add((v["windows"], v["seqlen"]))
    parts = []
    for ds, ws in seen.items():
        sizes = " or ".join(f"{w} windows x {s} tokens" for w, s in sorted(ws))
        parts.append(f"{DATA_LABEL.get(ds, ds)} (`{ds}`, {sizes})")
    return "; ".join(parts) or "no perplexity evaluated"


def calib_label(records: Iterable[dict[str, Any]]) -> str:
    cal = {(c["source"], c["nsamples"], c["seqlen"], c["seed"]) for r in records if (c := r.get("calibration"))}
    if not cal:
        return "no calibration data"
    return "; ".join(f"{n} `{src}` windows x {s} tokens, seed {seed}" for src, n, s, seed in sorted(cal))


def context(records: Iterable[dict[str, Any]], sparsity: str | None = None) -> str:
    """One line for a caption: model, evaluation data, calibration and (if given) sparsity."""
    records = list(records)
    if not records:
        return "no records"
    s = f"Model: {model_label(records[0])}. Perplexity on {eval_label(records)}. Calibration: {calib_label(records)}."
    return s + (f" Sparsity: {sparsity}." if sparsity else "")


def device_label(rec: dict[str, Any]) -> str:
    d = rec["provenance"]["device"]
    if str(d.get("type", "")).startswith("cuda"):
        return f"GPU {d.get('name', '')} (CUDA {d.get('cuda', '?')})"
    return f"CPU {d.get('name', '')} with {d.get('threads', '?')} threads"


# --- the paper's numbers ---------------------------------------------------------------------
def paper_value(model: str, method: str, structure: str = "unstructured", sparsity: float = 0.5,
                metric: str = "wikitext2_ppl", verified_only: bool = True) -> float | None:
    """One number from data/paper_numbers.csv, or None if it is not there (or not verified)."""
    from .report import paper_numbers

    df = paper_numbers(model=model, method=method, structure=structure, metric=metric)
    df = df[(df["sparsity"] - (0.0 if method == "dense" else sparsity)).abs() < 1e-9]
    if verified_only:
        df = df[df["verified"] == "yes"]
    return None if df.empty else float(df["value"].iloc[0])


def model_size(name: str) -> float:
    """Billions of parameters from a name such as LLaMA-2-13B (inf when there is none)."""
    import re

    m = re.search(r"(\d+(?:\.\d+)?)B\b", name)
    return float(m.group(1)) if m else math.inf


def unverified() -> pd.DataFrame:
    """The rows of data/paper_numbers.csv not checked against a source."""
    from .report import paper_numbers

    df = paper_numbers()
    return df[df["verified"].astype(str).str.lower() != "yes"].reset_index(drop=True)


# --- back-of-envelope operation counts -------------------------------------------------------
# Architectures from the models' published config.json (hidden size, MLP width, blocks, width of
# the key/value projections): facts about the models, not measurements.
ARCH = {
    "LLaMA-7B": dict(hidden=4096, mlp=11008, blocks=32, kv=4096),
    "SmolLM2-135M": dict(hidden=576, mlp=1536, blocks=30, kv=192),
}


def linear_shapes(hidden: int, mlp: int, kv: int) -> list[tuple[str, int, int]]:
    """(name, d_out, d_in) of the seven Linear layers of a LLaMA-style block."""
    return [("q_proj", hidden, hidden), ("k_proj", kv, hidden), ("v_proj", kv, hidden), ("o_proj", hidden, hidden),
            ("gate_proj", mlp, hidden), ("up_proj", mlp, hidden), ("down_proj", hidden, mlp)]


def op_counts(arch: dict[str, int]) -> dict[str, float]:
    """Rough operation counts of the score+mask step for one whole model.

    Wanda: a product per weight, then a sort of every row: d_out * d_in * log2(d_in).
    SparseGPT: factorising and inverting the d_in x d_in Hessian (about d_in^3) and the OBS
    updates of the remaining columns (about d_out * d_in^2)."""
    w = s = 0.0
    for _, d_out, d_in in linear_shapes(arch["hidden"], arch["mlp"], arch["kv"]):
        w += d_out * d_in * (1 + math.log2(d_in))
        s += d_in**3 + d_out * d_in**2
    return {"wanda": w * arch["blocks"], "sparsegpt": s * arch["blocks"]}


def positive(x: float | None, floor: float = 1e-6) -> float:
    """A value safe for a log axis or a division (None/NaN/<= 0 become `floor`)."""
    if x is None or not isinstance(x, (int, float)) or math.isnan(x) or x <= floor:
        return floor
    return float(x)


def ratio(a: float | None, b: float | None) -> float:
    """a / b, NaN when either is missing or b is not positive."""
    if a is None or b is None or not b > 0 or (isinstance(a, float) and math.isnan(a)):
        return float("nan")
    return a / b


def value_axis(ax, values: Iterable[float], axis: str = "y", spread: float = 3.0) -> str:
    """Log scale when the values span more than `spread` x (a collapsed method next to good ones),
    else linear from zero; returns the wording for the axis label ("log scale" or "")."""
    v = [positive(x) for x in values]
    if v and max(v) / min(v) > spread:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        return "log scale"
    (ax.set_ylim if axis == "y" else ax.set_xlim)(0, None)
    return ""
