"""Recovering what pruning lost: the paper's three methods at 50% unstructured and 2:4, each
fine-tuned with LoRA and with masked dense training (wanda_core.finetune), perplexity against
training steps and the share of the gap to dense each closes.

    from wanda_core.study.experiments import finetune
    out = finetune.recovery(P)      # {"curve", "summary", "dense", "paper"}

The pruned runs are the book's own (the same configurations as chapters 2 and 3), pruned again
with their weights kept when a record without them exists. Training length, window length and
batch come from the profile (finetune_* fields).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from wanda_core.runs.records import ppl
from wanda_core.study.experiments.common import PAPER_METHODS

SETTINGS = (("unstructured", 0.5), ("2:4", 0.5))  # the paper's headline settings


def pruned_with_weights(P, cfg) -> Path:
    """The record of `cfg` in the profile's runs, with its pruned weights saved (pruned again
    when a finished record lacks them); its path."""
    from wanda_core.runs.runner import record_id, run

    cfg = cfg.replace(save_weights=True)
    rec = run(cfg, P.runs_dir, progress=False)
    path = Path(P.runs_dir) / f"{rec['id']}.json"
    if not (Path(P.runs_dir) / "weights" / f"{record_id(cfg)}.pt").is_file():
        run(cfg, P.runs_dir, progress=False, force=True)
    return path


def configs(P):
    """(method, structure, how, FinetuneConfig without its source) for every run of the chapter."""
    from wanda_core.finetune import FinetuneConfig

    out = []
    for structure, sparsity in SETTINGS:
        for method in PAPER_METHODS:
            for how in P.finetune_hows:
                lr = P.finetune_lr_lora if how == "lora" else P.finetune_lr_masked
                out.append((method, structure, sparsity, FinetuneConfig(
                    how=how, steps=P.finetune_steps, seqlen=P.finetune_seqlen, batch_size=P.finetune_batch_size,
                    eval=P.eval, eval_at=P.finetune_eval_at, lr=lr, warmup_steps=P.finetune_warmup_steps,
                    checkpoint_every=0)))
    return out


def recovery(P) -> dict[str, pd.DataFrame]:
    """Every pruned setting fine-tuned each way: the perplexity curve and one summary row per run."""
    from tqdm import tqdm

    from wanda_core.study import paper
    from wanda_core.finetune import finetune
    from wanda_core.runs.runner import run

    dense_rec = run(P.config(method="dense"), P.runs_dir, progress=False)
    dense = ppl(dense_rec)
    ds = P.eval[0]
    curve, rows = [], []
    for method, structure, sparsity, fcfg in tqdm(configs(P), desc="fine-tuning", disable=True):
        src = pruned_with_weights(P, P.config(method=method, structure=structure, sparsity=sparsity))
        rec = finetune(fcfg.__class__(**{**fcfg.to_dict(), "from_record": str(src)}),
                       Path(P.runs_dir) / "finetune", progress=False)
        key = dict(method=method, structure=structure, how=fcfg.how)
        curve += [{**key, "step": c["step"], "ppl": c[ds]} for c in rec["ppl_curve"]]
        p, s = rec["ppl"][ds], rec["sparsity"]
        before, after, change = p["before"]["ppl"], p["after"]["ppl"], p["log_ppl_change"]
        gap = before - dense
        rows.append({**key, "dense": dense, "pruned": before, "after": after,
                     "after_low": p["after"]["low"], "after_high": p["after"]["high"],
                     "ratio": change["ppl_ratio"], "ratio_low": change["ppl_ratio_low"],
                     "ratio_high": change["ppl_ratio_high"], "resolved": change["high"] < 0 or change["low"] > 0,
                     "gap_closed": (before - after) / gap if gap > 0 else float("nan"),
                     "zeros_before": s["before"]["zeros"], "zeros_after": s["after"]["zeros"],
                     "sparsity_after": s["after"]["sparsity"],
                     "merged_sparsity": s.get("merged", {}).get("sparsity", float("nan")),
                     "steps": rec["steps"], "tokens": rec["tokens_seen"], "lr": rec["lr"],
                     "windows": p["before"]["windows"], "train_s": rec["seconds"]["train"],
                     "first_loss": rec["loss_curve"][0], "last_loss": rec["loss_curve"][-1],
                     "model": rec["model"]["name"], "id": rec["id"], "source_id": rec["source"]["id"]})
    papers = paper.verified(paper.numbers(table="Fine-tuning"))
    return {"curve": pd.DataFrame(curve), "summary": pd.DataFrame(rows),
            "dense": pd.DataFrame([{"model": dense_rec["model"]["name"], "dataset": ds, "ppl": dense,
                                    "id": dense_rec["id"]}]),
            "paper": papers}
