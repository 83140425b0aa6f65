"""What every experiment shares: run configurations through the runner and turn records into one
tidy row per run (a record's perplexity is read by wanda_core.runs.records.ppl).

    from wanda_core.study.experiments.common import runs
    df = runs(P, [P.config(method="dense"), P.config(method="wanda")], "example")
    df[["method", "ppl", "ppl_ratio"]]

Columns use plain keys (`method` is "wanda", not "Wanda"); wanda_core.report.present labels them.
Every row keeps its record `id`, so a caption can trace any number back to its run record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from wanda_core.prune.finite import describe

PAPER_METHODS = ("magnitude", "sparsegpt", "wanda")  # the paper's three pruning methods, in its order


def device(d: dict[str, Any]) -> str:
    """A record's device in words: 'CPU <name> with 2 threads' or 'GPU <name> (CUDA 12.4)'."""
    if str(d.get("type", "")).startswith("cuda"):
        return f"GPU {d.get('name', '')} (CUDA {d.get('cuda', '?')})"
    return f"CPU {d.get('name', '')} with {d.get('threads', '?')} threads"


def _row(r: dict[str, Any]) -> dict[str, Any]:
    c, f, pr = r["config"], r["prune_fields"], r.get("prune") or {}
    sp, sec = pr.get("sparsity") or {}, pr.get("seconds") or {}
    ev = next(iter(r["results"].get("ppl", {}).values()), {})
    cal = r.get("calibration") or {}
    dense = c["method"] == "dense"
    return {
        "method": c["method"], "structure": "-" if dense else c["structure"],
        "sparsity": f.get("sparsity", 0.0), "actual_sparsity": sp.get("overall", 0.0),
        "score": f.get("score"), "group": f.get("group"), "weight_update": c.get("weight_update", "none"),
        "calib": cal.get("source"), "nsamples": cal.get("nsamples"), "seed": cal.get("seed"),
        "seqlen": c["seqlen"], "dataset": ev.get("dataset"), "eval_windows": ev.get("windows"),
        "ppl": ev.get("ppl"), "prune_s": sec.get("total"), "score_mask_s": sec.get("score_mask"),
        "zeroed": sp.get("pruned_params", 0), "prunable": sp.get("prunable_params", 0),
        "model": r["model"]["name"], "params": r["model"]["params"], "source": r["model"]["source"],
        "device": device(r["provenance"]["device"]),
        "status": r.get("status", "complete"), "weights_sha256": r["model"].get("weights_sha256"),
        "diverged_at": describe(r.get("first_nonfinite")) if r.get("status") == "diverged" else None,
        "id": r["id"],
    }


def frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per record; `ppl_ratio` is the perplexity over the dense run's, when one is present."""
    df = pd.DataFrame([_row(r) for r in records])
    if len(df):
        check_same_weights(df)
    dense = df.loc[df["method"] == "dense", "ppl"]
    df["ppl_ratio"] = df["ppl"] / float(dense.iloc[0]) if len(dense) else float("nan")
    return df


def check_same_weights(df: pd.DataFrame) -> None:
    """Rows of one model must come from the same weights (records' weights_sha256, where they have
    one): a table never mixes records made from two versions, or a corrupt copy, of a model."""
    for model, sub in df.dropna(subset=["weights_sha256"]).groupby("model"):
        if sub["weights_sha256"].nunique() > 1:
            groups = {h[:12]: list(g["id"]) for h, g in sub.groupby("weights_sha256")}
            raise ValueError(f"run records of {model} were made from different weights: {groups}; rerun the "
                             f"stale ones with --force (or delete them) so one table compares one model")


def runs(P, configs, desc: str) -> pd.DataFrame:
    """Run (or reuse) `configs` in the profile's runs directory; one row per run, in order."""
    from wanda_core.runs.runner import run_many

    return frame(run_many(configs, P.runs_dir, desc=desc, progress=False))


def records(df: pd.DataFrame, P) -> list[dict[str, Any]]:
    """The run records behind a frame's rows, read back by id (for "how this page was made")."""
    from wanda_core.runs.records import read_json

    return [read_json(Path(P.runs_dir) / f"{i}.json") for i in dict.fromkeys(df["id"])]
