"""Sweeps: perplexity against sparsity (chapter 5) and against the calibration sample (chapter 6).

    from wanda_core.study.experiments import sweeps
    sw = sweeps.sparsity_sweep(P)             # dense + each method at each of P.sparsities
    sweeps.breakdown(sw)                      # where each method passes 2x and 10x dense
    cal = sweeps.calibration_sweep(P)         # Wanda and SparseGPT x P.calib_sizes x P.seeds
    sweeps.seed_spread(cal)                   # mean, std, min, max over seeds

At 50% sparsity, with the profile's calibration size and seed 0, these are Table 3's runs: the
records are shared, not redone.
"""
from __future__ import annotations

import pandas as pd

from wanda_core.study.experiments.common import PAPER_METHODS, runs

CALIBRATED = ("wanda", "sparsegpt")  # the methods that read calibration data
FACTORS = (2, 10)                    # "clearly damaged" and "broken": multiples of dense perplexity


def sparsity_configs(P) -> list:
    return [P.config(method="dense")] + [P.config(method=m, sparsity=s) for m in PAPER_METHODS for s in P.sparsities]


def sparsity_sweep(P) -> pd.DataFrame:
    """One row per (method, sparsity), dense first; `ppl_ratio` is relative to dense."""
    return runs(P, sparsity_configs(P), "sparsity sweep")


def breakdown(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per method: the lowest sparsity whose perplexity exceeds each of FACTORS x dense (NaN: never
    within the sweep) and the perplexity at the highest sparsity swept."""
    d = sweep[sweep["method"] != "dense"].sort_values("sparsity")
    top = d["sparsity"].max()
    rows = []
    for m, sub in d.groupby("method", sort=False):
        row = {"method": m}
        for f in FACTORS:
            hit = sub.loc[sub["ppl_ratio"] > f, "sparsity"]
            row[f"above_{f}x"] = float(hit.iloc[0]) if len(hit) else float("nan")
        row["ppl_at_top"] = float(sub.loc[sub["sparsity"] == top, "ppl"].iloc[0])
        row["top"] = top
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_configs(P) -> list:
    return [P.config(method="dense")] + [P.config(method=m, sparsity=0.5, nsamples=n, seed=s)
                                         for m in CALIBRATED for n in P.calib_sizes for s in P.seeds]


def calibration_sweep(P) -> pd.DataFrame:
    """One row per (method, calibration windows, seed) at 50% unstructured, dense first."""
    return runs(P, calibration_configs(P), "calibration sweep")


def seed_spread(cal: pd.DataFrame) -> pd.DataFrame:
    """Per (method, calibration windows): mean, sample std (n-1; 0 for one seed), min, max, range."""
    d = cal[cal["method"] != "dense"].astype({"nsamples": int})
    g = d.groupby(["method", "nsamples"], sort=False)["ppl"].agg(
        mean="mean", std="std", min="min", max="max", seeds="count").reset_index()
    g["std"] = g["std"].fillna(0.0)
    g["range"] = g["max"] - g["min"]
    return g
