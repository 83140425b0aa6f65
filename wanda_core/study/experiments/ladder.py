"""Does it hold as models grow? Dense / magnitude / SparseGPT / Wanda at 50% unstructured and 2:4
on a ladder of real models (SmolLM2-135M, Gemma-3-270M, Qwen2.5-Coder-0.5B, -1.5B): perplexity
relative to dense, the real zero-shot mean, and the three claims chapter 11 could not reproduce
on the smallest model, per rung, beside the paper's LLaMA-2 7B / 13B / 70B trend.

    from wanda_core.study.experiments import ladder
    out = ladder.ladder(load_profile("default"))
    out["runs"]    # one row per (model, config): params, ppl, ppl_rel, zero-shot mean, stderr, where
    out["claims"]  # per rung: Wanda/SparseGPT ppl (<= 1.10), Wanda/dense ppl (<= 1.28), score-time gap (> 10x)
    out["paper"]   # the paper's LLaMA-2 perplexities (verified), same columns
    out["paper_zeroshot"]  # the paper's Table 2 means (verified; LLaMA-7B and 65B)

The profile's `models` are run (or their records reused). Rungs the profile does not run but
whose records were committed by the `scale` profile (results/scale/, made by `WANDA_RUNS_DIR=results
make notebook NB=12_scale PROFILE=scale`) are read from there and marked `where = "results/scale"`;
rungs with neither are left out and listed in out["missing"].
"""
from __future__ import annotations

import pandas as pd

from wanda_core.study import paper as paper_numbers
from wanda_core.study.profiles import Profile, config_key, load_profile
from wanda_core.paths import repo_root
from wanda_core.runs.records import load_record
from wanda_core.runs.runner import run_many
from wanda_core.study.experiments import zeroshot as zs

RUNGS = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
SCALE_DIR = repo_root() / "results" / "scale"
# from the model cards (LLaMA-2 for perplexity, Table 3; LLaMA-1 for the zero-shot means, Table 2)
PAPER_PARAMS = {"LLaMA-2-7B": 6.74e9, "LLaMA-2-13B": 13.0e9, "LLaMA-2-70B": 69.0e9, "LLaMA-7B": 6.74e9, "LLaMA-65B": 65.2e9}
WANDA_VS_SPARSEGPT, WANDA_VS_DENSE, SCORE_GAP = 1.10, 1.28, 10.0  # the paper's claims, as chapter 11 tests them


def rung_configs(P: Profile, model: str) -> list:
    """A rung's seven configurations; zero-shot on P.ladder_tasks for those in P.ladder_task_configs
    (all when empty). A rung whose record already holds other zero-shot results (chapter 4's model)
    keeps and shows them."""
    cfgs = zs.configs(P, model, tasks=P.ladder_tasks)
    if not P.ladder_task_configs:
        return cfgs
    return [c if config_key(c.method, c.structure) in P.ladder_task_configs else c.replace(tasks=(), save_weights=False)
            for c in cfgs]


def _row(rec: dict, cfg, where: str, ds: str) -> dict:
    z = rec["results"].get("zeroshot") or {}
    ppl = rec["results"]["ppl"].get(ds, {}).get("ppl") if "ppl" in rec["results"] else None
    sec = (rec.get("prune") or {}).get("seconds", {})
    return {"model": cfg.model, "params": rec["model"]["params"], "method": cfg.method,
            "structure": "-" if cfg.method == "dense" else cfg.structure, "config": config_key(cfg.method, cfg.structure),
            "ppl": ppl, "score_seconds": sec.get("score_mask"), "prune_seconds": sec.get("total"), "where": where,
            "device": (rec.get("provenance") or {}).get("device"), "record": rec.get("id"),
            # the 1-minute load average when the run finished (recorded since Dec 2026): above the
            # machine's cores, its seconds were shared with other work
            "load": ((rec.get("provenance") or {}).get("device") or {}).get("load_average", [None])[0]}


def _records(P: Profile) -> tuple[list, list, list[str]]:
    """(records, configs, where) for the profile's rungs, then the committed scale rungs."""
    models = tuple(P.models) or (P.model,)
    recs, cfgs, where = [], [], []
    for m in models:
        c = rung_configs(P, m)
        recs += run_many(c, P.runs_dir, desc=f"ladder {m}", progress=False)
        cfgs += c
        where += [P.name] * len(c)
    if P.name != "scale" and SCALE_DIR.is_dir():
        S = load_profile("scale")
        for m in RUNGS:
            if m in models:
                continue
            c = rung_configs(S, m)
            found = [load_record(x, SCALE_DIR) for x in c]
            for r, x in zip(found, c):
                if r is not None:
                    recs.append(r), cfgs.append(x), where.append("results/scale")
    return recs, cfgs, where


def ladder(P: Profile) -> dict[str, pd.DataFrame]:
    recs, cfgs, where = _records(P)
    ds = P.eval[0]
    runs = pd.DataFrame([_row(r, c, w, ds) for r, c, w in zip(recs, cfgs, where)])
    acc = zs.tidy(recs, cfgs)
    mean = zs.means(acc) if len(acc) else pd.DataFrame(columns=["model", "config", "mean_acc", "stderr"])
    runs = runs.merge(mean[["model", "config", "mean_acc", "stderr", "tasks_at_chance"]], on=["model", "config"], how="left")
    dense = runs[runs["method"] == "dense"].set_index("model")["ppl"]
    runs["ppl_rel"] = runs["ppl"] / runs["model"].map(dense)
    order = {m: i for i, m in enumerate(RUNGS)}
    runs = runs.sort_values(["params", "model"], key=lambda s: s.map(order) if s.name == "model" else s).reset_index(drop=True)
    missing = [m for m in RUNGS if m not in set(runs["model"])]
    pz = zs.paper_rows()
    pz = pz[pz["task"] == "mean"].assign(params=lambda d: d["model"].map(PAPER_PARAMS))
    return {"runs": runs, "claims": claims(runs), "paper": paper(), "paper_zeroshot": pz, "acc": acc,
            "missing": pd.DataFrame({"model": missing})}


def claims(runs: pd.DataFrame) -> pd.DataFrame:
    """Per rung, the three claims chapter 11 attributes to model size, measured."""
    rows = []
    for model, g in runs.groupby("model", sort=False):
        v = g.set_index("config")
        get = lambda c, k: v.at[c, k] if c in v.index else None  # noqa: E731
        w, s, d = get("wanda 50%", "ppl"), get("sparsegpt 50%", "ppl"), get("dense", "ppl")
        ws, ss = get("wanda 50%", "score_seconds"), get("sparsegpt 50%", "score_seconds")
        rows.append({"model": model, "params": g["params"].iloc[0], "where": g["where"].iloc[0],
                     "wanda_over_sparsegpt": w / s if w and s else None,
                     "within_10pct": (w / s <= WANDA_VS_SPARSEGPT) if w and s else None,
                     "wanda_over_dense": w / d if w and d else None,
                     "within_1_28x": (w / d <= WANDA_VS_DENSE) if w and d else None,
                     "score_time_gap": ss / ws if ws and ss else None,
                     "gap_over_10x": (ss / ws > SCORE_GAP) if ws and ss else None})
    return pd.DataFrame(rows)


def paper() -> pd.DataFrame:
    """The paper's LLaMA-2 WikiText-2 perplexities (Table 3, verified), relative to dense."""
    p = paper_numbers.verified(paper_numbers.numbers(table="Table 3", metric="wikitext2_ppl", model=list(PAPER_PARAMS)))
    p["config"] = [config_key(m, s) for m, s in zip(p["method"], p["structure"])]
    dense = p[p["method"] == "dense"].set_index("model")["value"]
    p["ppl_rel"] = p["value"] / p["model"].map(dense)
    p["params"] = p["model"].map(PAPER_PARAMS)
    return p.rename(columns={"value": "ppl"})[["model", "params", "method", "structure", "config", "ppl", "ppl_rel", "source"]]
