"""Chapters 9 and 10's derived tables and sentences (what pruning costs, and whether 2:4 runs
faster), from the frames of wanda_core.experiments.timing.pruning_time and .speedup.speedup.

    from wanda_core import findings_cost as fc
    t = pruning_time(P)
    present.show(fc.phases(t)); present.md(fc.gap(t))
"""
from __future__ import annotations

import pandas as pd

from .present import model_label, table
from .speedup.timing import PREFILL_TOKENS


def phases(t: dict[str, pd.DataFrame]):
    """Seconds of score + mask and in total, peak memory, and the paper's score + mask (a table)."""
    cpu, paper = t["cpu"], t["paper"]
    d = cpu.assign(paper_score_mask=cpu["method"].map(dict(zip(paper["method"], paper["value"]))))
    return table(d, ["method", "score_mask", "total", "peak_memory_mb", "paper_score_mask"],
                 caption=f"Seconds (and peak memory, {cpu['measured_as'].iloc[0]}) at 50 % unstructured: "
                 f"{model_label(cpu['model'].iloc[0])} on {cpu['device'].iloc[0]}; paper: "
                 f"{', '.join(paper['model'].unique())} on an NVIDIA RTX A6000")


def gap(t: dict[str, pd.DataFrame]) -> str:
    """SparseGPT over Wanda, score + mask: measured here, estimated per model, and the paper's."""
    cpu = t["cpu"].set_index("method")["score_mask"]
    est = t["estimates"].set_index("model")["ratio"]
    p = dict(zip(t["paper"]["method"], t["paper"]["value"]))
    paper = f"{p['sparsegpt'] / p['wanda']:.0f}x" if {"sparsegpt", "wanda"} <= set(p) else "not in data/paper_numbers.csv"
    return (f"SparseGPT / Wanda, score + mask: **{cpu['sparsegpt'] / cpu['wanda']:.1f}x** measured here; estimated "
            "above: " + ", ".join(f"{v:.0f}x for {k}" for k, v in est.items()) + f"; measured by the paper: {paper}.")


def gpu(g: pd.DataFrame) -> str:
    """The LLaMA-7B-shape GPU runs: SparseGPT over Wanda for the whole model, or that none is committed."""
    if g.empty:
        return ("**No GPU record has been committed yet** (`results/pruning_time/` is empty): run `make gpu` on a "
                "machine with an NVIDIA GPU and commit `results/`.")
    m = g[g["phase"] == "model"].set_index("method")
    return (f"On {m['device'].iloc[0]}, SparseGPT / Wanda, whole-model score + mask: "
            f"**{m.at['sparsegpt', 'model_score_mask_s'] / m.at['wanda', 'model_score_mask_s']:.0f}x**.")


def offload(o: pd.DataFrame) -> str:
    return "" if len(o) else "**No offload record has been committed yet** (`results/offload/`): run `make gpu`."


def speedup_status(s: dict[str, pd.DataFrame]) -> str:
    """Whether any 2:4 speed-up has been measured, and where the records come from."""
    prov = s["provenance"]
    if not s["tokens"].empty:
        return f"`results/speedup/` holds {len(prov)} records, measured on {', '.join(prov['device'].unique())}."
    return ("**No 2:4 speed-up has been measured yet**, so the paper's numbers stand alone. `results/speedup/` holds "
            f"{len(prov)} records ({', '.join(prov['device'].unique()) if len(prov) else 'none'}) and no sparse timing: "
            "run `make gpu` (or `make speedup`) on a machine with an NVIDIA GPU of compute capability 8.0 or newer and "
            "commit `results/`.")


def speedup_wide(df: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Speed-up with one column per dtype, backend and timing mode ('bfloat16, cusparselt, graph')."""
    w = df.pivot_table(index=index, columns=["dtype", "backend", "mode"], values="speedup", observed=True)
    w.columns = [", ".join(map(str, c)) for c in w.columns]
    return w.reset_index()


def _span(x: pd.Series) -> str:
    lo, hi = float(x.min()), float(x.max())
    return f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}x-{hi:.2f}x"


def speedup_verdict(s: dict[str, pd.DataFrame]) -> str:
    """What the committed timings say, read from them: per block's linears and end to end, eager and graph."""
    b, st = s["blocks"], s["stack"]
    if b.empty or st.empty:
        return ""
    p = s["paper"].set_index("metric")["value"]
    paper = (f" (the paper: {p['end_to_end_speedup_A6000']:.2f}x end to end on an RTX A6000)"
             if "end_to_end_speedup_A6000" in p else "")
    out = [f"A block's linear layers at {PREFILL_TOKENS:,} tokens run "
           f"**{_span(b[b['mode'] == 'graph']['speedup'])}** the dense speed when replayed from a CUDA graph and "
           f"**{_span(b[b['mode'] == 'eager']['speedup'])}** when launched from Python (all model sizes and dtypes)."]
    g = st[st["mode"] == "graph"]
    out.append(f"The LLaMA-7B decoder stack, replayed from a CUDA graph: prefill **{_span(g[g['phase'] == 'prefill']['speedup'])}**, "
               f"decode **{_span(g[g['phase'] == 'decode']['speedup'])}**{paper}; "
               + ("2:4 is faster end to end." if (g["speedup"] > 1).all() else
                  "2:4 is slower end to end." if (g["speedup"] < 1).all() else "2:4 is faster in some phases only."))
    return " ".join(out)
