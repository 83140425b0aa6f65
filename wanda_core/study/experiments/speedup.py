"""Chapter 10, does 2:4 sparsity run faster: the committed GPU timings as DataFrames.

    from wanda_core.study.experiments.speedup import speedup
    s = speedup()          # dict of DataFrames, keys below; empty frames when nothing is committed

- "layers": speed-up (dense median / 2:4 median) per model size, layer type, dtype, backend and timing
  mode, at the paper's 2048 tokens;
- "blocks": the same for all seven linear layers of a block together (q/k/v/o counted four times,
  gate/up twice: the time a block's linears take, dense against 2:4);
- "tokens": every token count of every model (speed-up against tokens per call);
- "stack": the LLaMA-7B-shaped decoder stack, prefill and decode;
- "provenance": GPU, driver, CUDA, torch, cuSPARSELt and date of each record;
- "errors": configurations without a time, and why;
- "paper": the paper's speed-up rows of data/paper_numbers.csv, verified or not (a column says).
Nothing is measured here: measuring is `make gpu` / `python -m wanda_core.gpu.speedup` on a GPU.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from wanda_core.paths import repo_root
from wanda_core.gpu.speedup.read import load_provenance, load_results, speedup_table
from wanda_core.gpu.speedup.sparse24 import LAYER_GROUPS, LLAMA_DIMS
from wanda_core.gpu.speedup.timing import PREFILL_TOKENS
from wanda_core.study.experiments.timing import paper_rows

KEYS = ["model", "dtype", "backend", "mode"]


def _blocks(layers: pd.DataFrame) -> pd.DataFrame:
    """All linears of one block: the times of each layer group weighted by how many layers share it."""
    if layers.empty:
        return pd.DataFrame(columns=KEYS + ["dense_ms", "sparse_ms", "speedup"])
    n = layers["layer"].astype(str).map({g: len(t) for g, t in LAYER_GROUPS.items()}).astype(float)
    t = layers.assign(dense=layers["dense_ms"] * n, sparse=layers["sparse_ms"] * n, groups=1)
    g = t.groupby(KEYS, as_index=False, observed=True)[["dense", "sparse", "groups"]].sum()
    g = g[g["groups"] == len(LAYER_GROUPS)]  # only where every layer type was timed
    return g.assign(speedup=g["dense"] / g["sparse"]).rename(
        columns={"dense": "dense_ms", "sparse": "sparse_ms"}).drop(columns="groups")


def speedup(results: str | Path | None = None, tokens: int = PREFILL_TOKENS) -> dict[str, pd.DataFrame]:
    """Every table of chapter 10 (see the module docstring), from results/speedup/ or `results`."""
    rdir = Path(results) if results is not None else repo_root() / "results" / "speedup"
    df = load_results(rdir)
    if not df.empty:  # model sizes in size order (7B first), not alphabetical
        df["model"] = pd.Categorical(df["model"], categories=[m for m in LLAMA_DIMS if m in set(df["model"])]
                                     + sorted(set(df["model"]) - set(LLAMA_DIMS)))
    lin, stack = speedup_table(df, "linear"), speedup_table(df, "decoder_stack")
    layers = lin[lin["tokens"] == tokens][KEYS[:1] + ["layer"] + KEYS[1:] + ["dense_ms", "sparse_ms", "speedup"]]
    errors = (df[df["error"].notna()].groupby(["family", "backend", "error"]).size()
              .rename("configurations").reset_index())
    return dict(layers=layers.reset_index(drop=True), blocks=_blocks(layers), tokens=lin, stack=stack,
                provenance=load_provenance(rdir), errors=errors, paper=paper_rows("Speed-up", verified_only=False))
