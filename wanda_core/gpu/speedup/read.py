"""Reading the 2:4 speed-up records: what chapter 10 (through wanda_core.study.experiments.speedup) uses.

    df = load_results("results/speedup")         # one row per timed configuration
    t = speedup_table(df, "linear")              # dense beside 2:4, speedup = dense / 2:4 median
    load_provenance("results/speedup")           # GPU, driver, CUDA, torch, cuSPARSELt, date per record

Works on any machine: it reads JSON only (no GPU, no torch).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD_KIND = "wanda_core.speedup"  # stored in every record: unchanged when the module moved
RESULT_COLUMNS = [
    "family", "model", "layer", "out_features", "in_features", "phase", "batch", "context", "tokens",
    "rows", "n_layers", "dtype", "backend", "mode", "median_ms", "p10_ms", "p90_ms", "n", "calls",
    "copies", "error", "synthetic", "device", "source",
]


def load_records(results_dir: str | Path = "results/speedup", rehearsal: bool = False,
                 kind: str = RECORD_KIND) -> list[dict[str, Any]]:
    """The GPU records of `kind` in `results_dir` (missing folder: none), each with its file name.

    CPU rehearsal records are left out unless `rehearsal` is true: they time tiny shapes on a CPU.
    (`kind` "wanda_core.atscale", llama_scale.RECORD_KIND, reads the pruning-time and offload records the same way.)"""
    recs = []
    for p in sorted(Path(results_dir).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and r.get("kind") == kind and (rehearsal or not r.get("rehearsal")):
            recs.append({**r, "source": p.name})
    return recs


def load_results(results_dir: str | Path = "results/speedup", rehearsal: bool = False) -> "pd.DataFrame":  # noqa: F821
    """One row per timing from every record in `results_dir`, columns `RESULT_COLUMNS` (empty if none)."""
    import pandas as pd

    rows = [{**row, "family": r["family"], "synthetic": bool(r.get("synthetic")), "source": r["source"],
             "device": r.get("provenance", {}).get("device", {}).get("name")}
            for r in load_records(results_dir, rehearsal) for row in r.get("rows", [])]
    return pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS) if rows else pd.DataFrame(columns=RESULT_COLUMNS)


def load_provenance(results_dir: str | Path = "results/speedup", rehearsal: bool = False) -> "pd.DataFrame":  # noqa: F821
    """Where and with what each record was measured: one row per record."""
    import pandas as pd

    rows = [provenance_row(r) for r in load_records(results_dir, rehearsal)]
    return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS)


PROVENANCE_COLUMNS = ["family", "device", "driver", "cuda", "torch", "cusparselt", "date", "complete", "synthetic",
                      "rehearsal", "source"]


def provenance_row(r: dict[str, Any]) -> dict[str, Any]:
    """Device, driver, CUDA, torch, cuSPARSELt and date of one GPU record, flat."""
    p, d = r.get("provenance", {}), r.get("provenance", {}).get("device", {})
    return dict(family=r.get("family"), device=d.get("name"), driver=d.get("driver"), cuda=d.get("cuda"),
                torch=p.get("versions", {}).get("torch"), cusparselt=d.get("cusparselt"), date=p.get("date"),
                complete=r.get("complete"), synthetic=bool(r.get("synthetic")), rehearsal=bool(r.get("rehearsal")),
                source=r.get("source"))


def speedup_table(df: "pd.DataFrame", family: str = "linear") -> "pd.DataFrame":  # noqa: F821
    """Sparse timings beside the dense timing of the same configuration; speedup = dense / sparse median."""
    keys = (["model", "layer", "out_features", "in_features", "tokens"] if family == "linear"
            else ["model", "phase", "batch", "context", "tokens"]) + ["dtype", "mode"]
    ok = df[(df["family"] == family) & df["median_ms"].notna()]
    dense = ok[ok["backend"] == "dense"][keys + ["median_ms", "p10_ms", "p90_ms"]]
    dense = dense.rename(columns={"median_ms": "dense_ms", "p10_ms": "dense_p10_ms", "p90_ms": "dense_p90_ms"})
    sparse = ok[ok["backend"] != "dense"][keys + ["backend", "median_ms", "p10_ms", "p90_ms"]]
    t = sparse.rename(columns={"median_ms": "sparse_ms", "p10_ms": "sparse_p10_ms", "p90_ms": "sparse_p90_ms"})
    t = t.merge(dense, on=keys, how="inner")
    t["speedup"] = t["dense_ms"] / t["sparse_ms"]
    for c in {"out_features", "in_features", "tokens", "batch", "context"} & set(keys):
        t[c] = t[c].astype("Int64")  # counts, though NaN elsewhere in the long frame made them floats
    return t[keys + ["backend", "dense_ms", "sparse_ms", "speedup", "dense_p10_ms", "dense_p90_ms",
                     "sparse_p10_ms", "sparse_p90_ms"]].reset_index(drop=True)
