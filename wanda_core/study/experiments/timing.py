"""Chapter 9, how long pruning takes: every table of the chapter as a DataFrame.

    from wanda_core.study.experiments.timing import pruning_time
    t = pruning_time(load_profile("smoke"))   # dict of DataFrames, keys below

- "cpu": chapter 2's 50 % unstructured runs (magnitude, Wanda, SparseGPT) on the book's model,
  run or reused through the runner, with the engine's time per phase and peak memory;
- "gpu": the LLaMA-7B-shaped runs of `wanda_core.gpu.llama_scale time` committed under results/pruning_time/
  (measured and, where only part was measured, scaled to the whole model and the paper's 128 x 2048);
- "offload": the LLaMA-30B-shaped run under a 24 GiB device cap from results/offload/;
- "paper": the paper's pruning-time rows of data/paper_numbers.csv (verified rows only);
- "estimates": back-of-envelope operation counts of score + mask (not a measurement).
GPU frames are empty (with their columns) when no record has been committed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from wanda_core.study import paper
from wanda_core.paths import repo_root
from wanda_core.gpu.speedup.read import load_records, provenance_row
from wanda_core.study.experiments.costs import ARCH, op_counts
from wanda_core.study.experiments.tables import table3_configs

TIMED_METHODS = ("magnitude", "wanda", "sparsegpt")
PHASES = ("capture", "statistics_forward", "score_mask", "reforward")
LLAMA_SCALE_KIND = "wanda_core.atscale"  # llama_scale.RECORD_KIND
GPU_COLUMNS = ["method", "phase", "blocks", "total_blocks", "nsamples", "seqlen", "score_mask_s", "total_s",
               "model_score_mask_s", "paper_setting_total_s", "block_factor", "window_factor", "peak_device_gib",
               "error", "device", "driver", "cuda", "torch", "date", "source"]
OFFLOAD_COLUMNS = ["shape", "model_gib", "cap_gib", "fits_without_offload", "without_offload_error", "method",
                   "blocks", "nsamples", "seqlen", "total_s", "peak_device_gib", "error", "device", "date", "source"]


def configs(P) -> dict:
    """Chapter 2's 50 % unstructured runs: the same records, so nothing is pruned twice."""
    return {c.method: c for c in table3_configs(P) if c.method in TIMED_METHODS}


def cpu_runs(P) -> pd.DataFrame:
    """One row per method: the engine's seconds per phase, total, peak memory and where measured."""
    with warnings.catch_warnings():  # tqdm.auto's "IProgress not found" in a notebook kernel: not news
        warnings.filterwarnings("ignore", message="IProgress not found")
        from wanda_core.runs.runner import run_many

        cfgs = configs(P)
        records = run_many(cfgs.values(), P.runs_dir, progress=False)
    rows = []
    for m, rec in zip(cfgs, records):  # in the configs' order (chapter 2's), which is not TIMED_METHODS
        s, dev = rec["prune"]["seconds"], rec["provenance"]["device"]
        rows.append(dict(method=m, model=rec["model"]["name"], **{p: s.get(p, 0.0) for p in PHASES},
                         other=max(s["total"] - sum(s.get(p, 0.0) for p in PHASES), 0.0), total=s["total"],
                         peak_memory_mb=rec["prune"].get("peak_memory_mb"), device=dev.get("name"),
                         measured_as="GPU allocated" if str(dev.get("type", "")).startswith("cuda")
                         else "CPU process resident set"))
    return pd.DataFrame(rows)


def paper_rows(table: str, verified_only: bool = True) -> pd.DataFrame:
    """The paper's rows of `table` in data/paper_numbers.csv (with their source and verified flag)."""
    df = paper.numbers(table=table)
    return paper.verified(df) if verified_only else df


def _results(root: str | Path | None, family: str) -> Path:
    return Path(root) if root is not None else repo_root() / "results" / family


def gpu_runs(root: str | Path | None = None, rehearsal: bool = False) -> pd.DataFrame:
    """Each prune of the LLaMA-shaped model in results/pruning_time/: measured seconds and the scaled ones."""
    rows = []
    for r in load_records(_results(root, "pruning_time"), rehearsal, kind=LLAMA_SCALE_KIND):
        prov = provenance_row(r)
        for run in r["runs"]:
            s, sc = run.get("seconds") or {}, run.get("scaled") or {}
            rows.append(dict(method=run["method"], phase=run["phase"], blocks=run["blocks"],
                             total_blocks=run["total_blocks"], nsamples=run["nsamples"], seqlen=run["seqlen"],
                             score_mask_s=s.get("score_mask"), total_s=s.get("total"),
                             model_score_mask_s=sc.get("score_mask_s"), paper_setting_total_s=sc.get("total_s"),
                             block_factor=sc.get("block_factor"), window_factor=sc.get("window_factor"),
                             peak_device_gib=run.get("peak_device_gib"), error=run.get("error"),
                             **{k: prov[k] for k in ("device", "driver", "cuda", "torch", "date", "source")}))
    return pd.DataFrame(rows, columns=GPU_COLUMNS)


def offload_runs(root: str | Path | None = None, rehearsal: bool = False) -> pd.DataFrame:
    """The larger-than-memory prune(s) in results/offload/: did the model fit the cap, and the offloaded run."""
    rows = []
    for r in load_records(_results(root, "offload"), rehearsal, kind=LLAMA_SCALE_KIND):
        prov, w, st = provenance_row(r), r.get("without_offload", {}), r["settings"]
        for run in r["runs"]:
            rows.append(dict(shape=st["shape"], model_gib=w.get("model_gib"), cap_gib=st["cap_gib"],
                             fits_without_offload=w.get("fits"), without_offload_error=w.get("error"),
                             method=run["method"], blocks=run.get("blocks"), nsamples=st["nsamples"],
                             seqlen=st["seqlen"], total_s=(run.get("seconds") or {}).get("total"),
                             peak_device_gib=run.get("peak_device_gib"), error=run.get("error"),
                             device=prov["device"], date=prov["date"], source=prov["source"]))
    return pd.DataFrame(rows, columns=OFFLOAD_COLUMNS)


def op_estimates() -> pd.DataFrame:
    """Operations of score + mask for a whole model: Wanda d_out d_in (1 + log2 d_in) per layer (a product
    and a row sort), SparseGPT d_in^3 + d_out d_in^2 (inverting H and the OBS updates). An estimate."""
    rows = []
    for name, a in ARCH.items():
        ops = op_counts(a)
        rows.append(dict(model=name, largest_d_in=max(a["hidden"], a["mlp"]), wanda_ops=ops["wanda"],
                         sparsegpt_ops=ops["sparsegpt"], ratio=ops["sparsegpt"] / ops["wanda"]))
    return pd.DataFrame(rows)


def pruning_time(P, results: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Every table of chapter 9 (see the module docstring); `results` overrides repo results/ (tests)."""
    root = Path(results) if results is not None else None
    return dict(cpu=cpu_runs(P), paper=paper_rows("Pruning time"), estimates=op_estimates(),
                gpu=gpu_runs(root / "pruning_time" if root else None),
                offload=offload_runs(root / "offload" if root else None))
