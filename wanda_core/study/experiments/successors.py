"""After Wanda (chapter 13): OWL, RIA and DSnoT against Wanda and SparseGPT on one protocol.

Each method is a configuration of the same engine (allocation, score, refinement), run at the
profile's `successor_sparsities` (unstructured) and `successor_structures` (N:M, where the method
applies) over its calibration `seeds`, with its perplexity set and (`successor_zeroshot`) its
zero-shot tasks.

    from wanda_core.study.profiles import load_profile
    from wanda_core.study.experiments import successors
    out = successors.table(load_profile("smoke"))   # runs, summary, claims, paper, dense
    python -m wanda_core.study.experiments.successors default    # the same, printed (~14 min on 2 idle cores)
"""
from __future__ import annotations

import sys
from typing import Any

import pandas as pd

from wanda_core.runs.runner import dense_baseline, run_many

# label -> the RunConfig fields that make the method (declared once; the chapter shows these labels)
SUCCESSOR_METHODS: dict[str, dict[str, Any]] = {
    "Wanda": dict(method="wanda"),
    "OWL + Wanda": dict(method="wanda", allocation="owl"),
    "RIA": dict(method="wanda", score="ria", group="layer"),  # RIA's code compares within the layer
    "Wanda + DSnoT": dict(method="wanda", refine="dsnot"),
    "SparseGPT": dict(method="sparsegpt"),
    "OWL + SparseGPT": dict(method="sparsegpt", allocation="owl"),
}
# each successor's claim, as its README states it: (method, baseline it should beat, where)
README_CLAIMS = [("OWL + Wanda", "Wanda", "unstructured"), ("OWL + SparseGPT", "SparseGPT", "unstructured"),
          ("RIA", "Wanda", "unstructured"), ("RIA", "Wanda", "2:4"), ("Wanda + DSnoT", "Wanda", "unstructured")]


def configs(P) -> list[tuple[str, str, Any]]:
    """(label, setting, RunConfig) for every run of the chapter; OWL is skipped under N:M."""
    out = []
    settings = [("unstructured", s) for s in P.successor_sparsities] + [(nm, 0.5) for nm in P.successor_structures]
    for structure, sparsity in settings:
        for label, kw in SUCCESSOR_METHODS.items():
            if structure != "unstructured" and kw.get("allocation") == "owl":
                continue  # a per-block N:M ratio is not defined
            for seed in P.seeds:
                cfg = P.config(sparsity=sparsity, structure=structure, seed=seed,
                               tasks=P.tasks if P.successor_zeroshot else (), **kw)
                out.append((label, _setting(structure, sparsity), cfg))
    return out


def _setting(structure: str, sparsity: float) -> str:
    return f"{round(100 * sparsity)}%" if structure == "unstructured" else structure


def _zeroshot(rec) -> dict[str, Any]:
    """Mean accuracy (%) over the tasks, its standard error and the examples per task."""
    z = rec["results"].get("zeroshot")
    if not z:
        return {"zeroshot_mean": None, "zeroshot_stderr": None, "zeroshot_n": None}
    over = z["mean_over"]
    se = sum(z["tasks"][t]["acc_stderr"] ** 2 for t in over) ** 0.5 / len(over)
    return {"zeroshot_mean": 100 * z["mean_acc"], "zeroshot_stderr": 100 * se,
            "zeroshot_n": min(z["tasks"][t]["n"] for t in over)}


def table(P, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Run (or reuse) every configuration; return tidy frames:

    runs     one row per run (method, setting, seed, ppl, zero-shot mean, block sparsity range, id)
    summary  per method and setting: mean and std over seeds of ppl and zero-shot mean
    claims   each README's claim against ours: mean gain in ppl and whether it exceeds the seeds' spread
    paper    the successors' verified README numbers (data/paper_numbers.csv)
    dense    the dense model's ppl and zero-shot mean on the same protocol
    blocks   per run and block: the sparsity allocated, the sparsity measured, OWL's outlier ratio
    """
    plan = configs(P)
    if not plan:
        raise ValueError(f"profile {P.name!r} has no successor_sparsities and no successor_structures: nothing to run")
    dense_cfg = dense_baseline(plan[0][2]).replace(seed=0)
    recs = run_many([dense_cfg] + [c for _, _, c in plan], P.runs_dir, desc="after Wanda", progress=progress)
    ds = P.eval[0]
    rows, blocks = [], []
    for (label, setting, cfg), rec in zip(plan, recs[1:]):
        alloc = rec["prune"].get("allocation", {}).get("block_sparsity") or rec["prune"]["sparsity"]["per_block"]
        ratios = rec["prune"].get("allocation", {}).get("outlier_ratio") or [None] * len(alloc)
        blocks += [{"method": label, "setting": setting, "seed": cfg.seed, "block": i, "sparsity": s,
                    "measured": m, "outlier_ratio": r}
                   for i, (s, m, r) in enumerate(zip(alloc, rec["prune"]["sparsity"]["per_block"], ratios))]
        rows.append({"method": label, "setting": setting, "seed": cfg.seed, "ppl": rec["results"]["ppl"][ds]["ppl"],
                     **_zeroshot(rec), "sparsity": rec["prune"]["sparsity"]["overall"],
                     "block_min": min(alloc), "block_max": max(alloc),
                     "prune_seconds": rec["seconds"]["prune"], "id": rec["id"]})
    runs = pd.DataFrame(rows)
    order = list(dict.fromkeys(runs["setting"]))
    runs["setting"] = pd.Categorical(runs["setting"], order, ordered=True)
    runs["method"] = pd.Categorical(runs["method"], list(SUCCESSOR_METHODS), ordered=True)
    summary = (runs.groupby(["setting", "method"], observed=True)
               .agg(ppl_mean=("ppl", "mean"), ppl_std=("ppl", "std"), zeroshot_mean=("zeroshot_mean", "mean"),
                    zeroshot_std=("zeroshot_mean", "std"), zeroshot_stderr=("zeroshot_stderr", "mean"),
                    zeroshot_n=("zeroshot_n", "min"), seeds=("seed", "count"), block_min=("block_min", "min"),
                    block_max=("block_max", "max"), prune_seconds=("prune_seconds", "mean"))
               .reset_index())
    dense = pd.DataFrame([{"ppl": recs[0]["results"]["ppl"][ds]["ppl"], **_zeroshot(recs[0]),
                           "dataset": ds, "model": recs[0]["model"]["name"], "id": recs[0]["id"]}])
    return {"runs": runs, "summary": summary, "claims": _claims(summary), "paper": paper(), "dense": dense,
            "blocks": pd.DataFrame(blocks)}


def _claims(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    s = summary.set_index(["setting", "method"])
    for method, base, where in README_CLAIMS:
        for setting in summary["setting"].cat.categories:
            if (where == "unstructured") != str(setting).endswith("%") or (setting, method) not in s.index \
                    or (setting, base) not in s.index:
                continue
            m, b = s.loc[(setting, method)], s.loc[(setting, base)]
            gain = b["ppl_mean"] - m["ppl_mean"]
            spread = (pd.Series([m["ppl_std"], b["ppl_std"]]).fillna(0) ** 2).sum() ** 0.5
            rows.append({"method": method, "baseline": base, "setting": setting, "ppl_gain": gain,
                         "spread": spread, "shown": bool(gain > 0), "beyond_spread": bool(gain > 2 * spread)})
    return pd.DataFrame(rows)


def paper() -> pd.DataFrame:
    """The successors' own README numbers (verified rows only)."""
    from wanda_core.study import paper

    return paper.verified(paper.numbers(table=["OWL README", "RIA README", "DSnoT README"]))


if __name__ == "__main__":
    from wanda_core.study.profiles import load_profile

    out = table(load_profile(sys.argv[1] if len(sys.argv) > 1 else "default"), progress=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for k in ("dense", "summary", "claims"):
            print(f"--- {k}\n{out[k].to_string(index=False)}")
