"""Chapter 9's figure, sentences and derived tables (what pruning costs), from wanda_core.study.experiments.timing."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.report.present import display_name, model_label, table


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


def gpu_table(g: pd.DataFrame):
    """The LLaMA-7B-shape GPU runs (a table); None when no record is committed (`gpu` says so)."""
    if g.empty:
        return None
    return table(g.drop(columns="source"), caption="Pruning a LLaMA-7B shape", floatfmt="{:.3g}")


def offload(o: pd.DataFrame) -> str:
    """Empty when an offload record is committed (`offload_table` shows it), else that none is."""
    return "" if len(o) else "**No offload record has been committed yet** (`results/offload/`): run `make gpu`."


def offload_table(o: pd.DataFrame):
    """Block offload under a memory cap (a table); None when no record is committed (`offload` says so)."""
    if o.empty:
        return None
    return table(o.drop(columns="source"), caption="Block offload under a memory cap")


def time_phases(cpu: pd.DataFrame) -> None:
    """Seconds per pruning phase for each method, stacked."""
    plt = pyplot()
    phases = {"capture": "capture", "statistics_forward": "statistics forward", "score_mask": "score + mask",
              "reforward": "re-forward", "other": "other"}
    d = cpu.set_index(cpu["method"].map(display_name))[list(phases)].rename(columns=phases)
    ax = d.plot.barh(stacked=True)
    ax.set(xlabel=f"seconds on {cpu['device'].iloc[0]}", ylabel="",
           title=f"{model_label(cpu['model'].iloc[0])}: where the pruning time goes")
    plt.show()
