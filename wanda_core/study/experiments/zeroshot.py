"""Table 2: zero-shot accuracy of dense / magnitude / SparseGPT / Wanda at 50% unstructured and 2:4
on the paper's seven tasks (real data, embedded copies by default), with standard errors, 95%
intervals and sample sizes, beside the paper's verified numbers.

    from wanda_core.study.experiments import zeroshot
    out = zeroshot.table2(load_profile("default"))
    out["acc"]          # one row per (config, task): acc, stderr, n, ci95, chance, at_chance, source
    out["mean"]         # one row per config: the Table 2 mean over the seven tasks and its stderr
    out["comparisons"]  # the chapter's claims: difference, its stderr, resolved (> 2 stderr apart)
    out["paper"]        # Table 2 rows of data/paper_numbers.csv (verified == "yes" only)
"""
from __future__ import annotations

import math

import pandas as pd

from wanda_core.study import paper
from wanda_core.study.profiles import TABLE2_CONFIGS, Profile, config_key
from wanda_core.runs.runner import run_many
from wanda_core.evaluation.tasks import CHANCE, EXTRA_TASKS, PAPER_TASKS

# the comparisons the chapter draws: (a, b) where a and b are config labels
COMPARISONS = (("dense", "magnitude 50%"), ("wanda 50%", "magnitude 50%"), ("sparsegpt 50%", "wanda 50%"),
          ("dense", "wanda 50%"), ("wanda 2:4", "magnitude 2:4"), ("sparsegpt 2:4", "wanda 2:4"))
Z95 = 1.959964


def configs(P: Profile, model: str | None = None, tasks=None, **kw) -> list:
    """The seven Table 2 configurations of `model` (default P.model) on `tasks` (default P.tasks)."""
    tasks = tuple(P.tasks if tasks is None else tasks)
    return [P.config(model=model or P.model, method=m, sparsity=0.5, structure=s, tasks=tasks,
                     save_weights=bool(tasks), **kw) for m, s in TABLE2_CONFIGS]


def tidy(records: list[dict], cfgs: list) -> pd.DataFrame:
    """One row per (model, config, task) from run records."""
    rows = []
    for rec, cfg in zip(records, cfgs):
        z = rec["results"].get("zeroshot") or {"tasks": {}}
        for task, r in z["tasks"].items():
            se = r.get("acc_stderr")
            se = se if se is not None else math.sqrt(r["acc"] * (1 - r["acc"]) / max(r["n"] - 1, 1))
            chance = r.get("chance", CHANCE.get(task, 0.0))
            rows.append({"model": cfg.model, "params": rec["model"]["params"], "method": cfg.method,
                         "structure": "-" if cfg.method == "dense" else cfg.structure,
                         "config": config_key(cfg.method, cfg.structure), "task": task, "acc": r["acc"], "stderr": se,
                         "n": r["n"], "ci95_lo": r["acc"] - Z95 * se, "ci95_hi": r["acc"] + Z95 * se,
                         "chance": chance, "at_chance": r["acc"] - chance < 2 * se, "proxy": r.get("proxy", False),
                         "in_mean": task not in EXTRA_TASKS, "source": r.get("source", "hub" if not r.get("proxy") else "proxy"),
                         "record": rec.get("id")})
    return pd.DataFrame(rows)


def means(acc: pd.DataFrame) -> pd.DataFrame:
    """Per config: the unweighted mean over the tasks in Table 2's mean, its standard error
    (tasks are independent samples: sqrt(sum se^2) / k) and 95% interval."""
    rows = []
    for (model, config), g in acc[acc["in_mean"]].groupby(["model", "config"], sort=False):
        k = len(g)
        se = math.sqrt((g["stderr"] ** 2).sum()) / k
        m = g["acc"].mean()
        rows.append({"model": model, "params": g["params"].iloc[0], "config": config, "method": g["method"].iloc[0],
                     "structure": g["structure"].iloc[0], "mean_acc": m, "stderr": se, "ci95_lo": m - Z95 * se,
                     "ci95_hi": m + Z95 * se, "tasks": k, "n_total": int(g["n"].sum()),
                     "chance": g["chance"].mean(), "tasks_at_chance": int(g["at_chance"].sum())})
    return pd.DataFrame(rows)


def comparisons(mean: pd.DataFrame, claims=COMPARISONS) -> pd.DataFrame:
    """a - b for each claim, its standard error (independent-sample bound; the runs share examples,
    so the true paired error is smaller) and whether it is resolved (|diff| > 2 stderr)."""
    rows = []
    for model, g in mean.groupby("model", sort=False):
        by = g.set_index("config")
        for a, b in claims:
            if a in by.index and b in by.index:
                d = by.at[a, "mean_acc"] - by.at[b, "mean_acc"]
                se = math.hypot(by.at[a, "stderr"], by.at[b, "stderr"])
                rows.append({"model": model, "a": a, "b": b, "diff": d, "stderr": se, "resolved": abs(d) > 2 * se})
    return pd.DataFrame(rows)


def paper_rows(table: str = "Table 2") -> pd.DataFrame:
    """The paper's zero-shot numbers (verified rows only), as fractions like ours."""
    p = paper.verified(paper.numbers(table=table))
    p = p[p["metric"].str.startswith("zeroshot")].copy()
    p["config"] = [config_key(m, s) for m, s in zip(p["method"], p["structure"])]
    p["task"] = p["task"].fillna("mean")
    p["acc"] = p["value"] / 100
    return p[["model", "config", "method", "structure", "task", "acc", "source"]].reset_index(drop=True)


def table2(P: Profile, model: str | None = None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Run (or reuse) the seven configurations and return the tidy tables of the chapter."""
    cfgs = configs(P, model)
    records = run_many(cfgs, P.runs_dir, desc="Table 2", progress=progress)
    acc = tidy(records, cfgs)
    mean = means(acc)
    return {"acc": acc, "mean": mean, "comparisons": comparisons(mean), "paper": paper_rows(),
            "tasks": pd.DataFrame({"task": list(P.tasks), "in_paper": [t in PAPER_TASKS for t in P.tasks]})}
