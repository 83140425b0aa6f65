"""Chapter 10's figure, sentences and derived tables (whether 2:4 runs faster), from wanda_core.study.experiments.speedup."""
from __future__ import annotations

import pandas as pd

from wanda_core.report.plotting import pyplot
from wanda_core.gpu.speedup.timing import PREFILL_TOKENS
from wanda_core.report.present import table


def speedup_status(s: dict[str, pd.DataFrame]) -> str:
    """Whether any 2:4 speed-up has been measured, and where the records come from."""
    prov = s["provenance"]
    if not s["tokens"].empty:
        return f"`results/speedup/` holds {len(prov)} records, measured on {', '.join(prov['device'].unique())}."
    return ("**No 2:4 speed-up has been measured yet**, so the paper's numbers stand alone. `results/speedup/` holds "
            f"{len(prov)} records ({', '.join(prov['device'].unique()) if len(prov) else 'none'}) and no sparse timing: "
            "run `make gpu` (or `make speedup`) on a machine with an NVIDIA GPU of compute capability 8.0 or newer and "
            "commit `results/`.")


def provenance_table(s: dict[str, pd.DataFrame]):
    """Where each record was measured (a table); None when no record is committed."""
    if s["provenance"].empty:
        return None
    return table(s["provenance"], caption="Where each record was measured")


def errors_table(s: dict[str, pd.DataFrame]):
    """The configurations without a time, and why (a table); None when no record is committed."""
    if s["provenance"].empty:
        return None
    return table(s["errors"], caption="Configurations without a time, and why")


def blocks_table(s: dict[str, pd.DataFrame]):
    """Speed-up of all linear layers of one block, per model size (a table); None without timings."""
    if s["tokens"].empty:
        return None
    return table(speedup_wide(s["blocks"], ["model"]), floatfmt="{:.2f}x", caption="All linear layers "
                 "of one block (dense time / 2:4 time), one sequence of the paper's length")


def layers_table(s: dict[str, pd.DataFrame]):
    """Speed-up per model size and layer type (a table); None without timings."""
    if s["tokens"].empty:
        return None
    return table(speedup_wide(s["layers"], ["model", "layer"]), floatfmt="{:.2f}x",
                 caption="Speed-up per model size and layer type")


def stack_table(s: dict[str, pd.DataFrame]):
    """The decoder stack, ms per forward, dense and 2:4 (a table); None without timings."""
    if s["tokens"].empty:
        return None
    return table(s["stack"], ["phase", "batch", "context", "dtype", "backend", "mode", "dense_ms", "sparse_ms", "speedup"],
                 formats={"batch": "{:,}", "context": "{:,}"}, caption="Decoder stack, ms per forward")


def speedup_wide(df: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Speed-up with one column per dtype, backend and timing mode ('bfloat16, cusparselt, graph')."""
    w = df.pivot_table(index=index, columns=["dtype", "backend", "mode"], values="speedup", observed=True)
    w.columns = [", ".join(map(str, c)) for c in w.columns]
    return w.reset_index()


def speedup_tokens(tokens: pd.DataFrame) -> None:
    """2:4 speed-up of the smallest model's linear layers against tokens per call (log x); nothing
    without timings."""
    if tokens.empty:
        return
    plt = pyplot()
    tok = tokens[tokens["model"] == tokens["model"].cat.categories[0]]
    ax = tok.pivot_table(index="tokens", columns=["layer", "dtype", "backend", "mode"], values="speedup",
                         observed=True).plot(logx=True, marker="o")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set(xlabel="tokens per call (log scale)", ylabel="speed-up (dense time / 2:4 time)",
           title=f"LLaMA-{tok['model'].iloc[0]} linear layers")
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    plt.show()


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
    out.append(f"The LLaMA-7B decoder stack, replayed from a CUDA graph: prefill "
               f"**{_span(g[g['phase'] == 'prefill']['speedup'])}**, decode **{_span(g[g['phase'] == 'decode']['speedup'])}**"
               f"{paper}; " + ("2:4 is faster end to end." if (g["speedup"] > 1).all() else
                               "2:4 is slower end to end." if (g["speedup"] < 1).all() else
                               "2:4 is faster in some phases only."))
    return " ".join(out)
