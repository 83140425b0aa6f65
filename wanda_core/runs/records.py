"""Run records: a JSON file per prune or evaluation, written atomically and reused on rerun.

Every number the book prints comes from one of these records. A record says how it was made
(configuration, its hash, package versions, device, date), so a reader can trace a table cell
back to a command. Writing goes through a temporary file and `os.replace`, so an interrupted run
never leaves a half-written record, and a rerun with the same configuration finds the finished
one and reuses it.

    from wanda_core.runs.records import atomic_write_json, read_json, provenance, config_hash
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Callable
from wanda_core.paths import atomic_write_json, read_json  # noqa: F401 -- records' writers import them from here

# Bump when the record layout or what a configuration computes changes, so old records are not reused.
# 2: one perplexity per dataset (results.ppl, measured with the run's seqlen and eval_windows; the
#    results.ppl_all table that kept two window counts is gone), and the paper's magnitude baseline
#    follows the official rule (every |W| <= the layer's threshold is pruned; prune_fields.mask_rule).
RECORD_VERSION = 2

log = logging.getLogger(__name__)


def config_hash(fields: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able dict (key order does not matter)."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(device: str | None = None) -> dict[str, Any]:
    """Versions, device and date, for the record's `provenance` field."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev: dict[str, Any] = {"type": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        dev["name"] = torch.cuda.get_device_name(idx)
        dev["cuda"] = torch.version.cuda
        dev["capability"] = ".".join(map(str, torch.cuda.get_device_capability(idx)))
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["threads"] = torch.get_num_threads()
        dev["cpus"] = os.cpu_count()
        if hasattr(os, "getloadavg"):  # 1/5/15-minute load: above the cores, timings shared the machine
            dev["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": dev,
        # which machine and process wrote it; $WANDA_WORKER names the sweep worker (wanda_core.study.sweep)
        "host": platform.node(), "pid": os.getpid(), "worker": os.environ.get("WANDA_WORKER"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: _version(p)
            for p in ("torch", "transformers", "lm_eval", "wanda_core", "numpy", "gguf", "accelerate")
        },
        "record_version": RECORD_VERSION,
    }


def ppl(rec: dict[str, Any], dataset: str | None = None) -> float:
    """The perplexity a record holds (the one place that reads it) on `dataset` (its first evaluated dataset if None);
    NaN for a diverged run (its record says where: `status`, `first_nonfinite`; present.table shows "diverged")."""
    p = rec["results"]["ppl"]
    v = p[dataset or next(iter(p))]["ppl"]
    return float("nan") if v is None else float(v)


# --- building a record (the runner calls these; the layout is defined here only) ---------------
def score_identity(score_fn: Callable | None) -> dict[str, str] | None:
    if score_fn is None:
        return None
    try:
        src = inspect.getsource(score_fn)
    except (OSError, TypeError):
        src = repr(score_fn)
    # values a closure captured or defaults it carries change the function without changing its source
    cells = [repr(c.cell_contents) for c in (getattr(score_fn, "__closure__", None) or ())]
    src += repr(cells) + repr(getattr(score_fn, "__defaults__", None))
    return {"name": getattr(score_fn, "__name__", repr(score_fn)), "source_sha": hashlib.sha256(src.encode()).hexdigest()[:12]}


def record_id(cfg, score_fn: Callable | None = None) -> str:
    """The record's name: the hash of the fields that decide the pruned weights (and a custom score's identity)."""
    f = cfg.prune_fields()
    if score_fn is not None:
        f["custom_score"] = score_identity(score_fn)
    return config_hash(f)




def new_record(cfg, rid: str, info, prev: dict | None, score_fn: Callable | None) -> dict[str, Any]:
    """A record being filled: what the run is (configuration, model); the results of `prev` (a
    finished record of the same configuration) carried over, so only missing evaluations are added."""
    return {
        "id": rid,
        "status": "complete",
        "record_version": RECORD_VERSION,
        "config": cfg.to_dict(),
        "prune_fields": cfg.prune_fields(),
        "custom_score": score_identity(score_fn),
        "model": {"name": info.name, "source": info.source, "params": info.params, "max_seqlen": info.max_seqlen,
                  "weights_sha256": info.weights_sha256},
        "results": {**prev["results"], "ppl": dict(prev["results"]["ppl"])} if prev else {"ppl": {}},
    }


def calibration_entry(cfg, windows: Any) -> dict[str, Any]:
    """How the calibration windows were drawn (`windows`: where each one starts)."""
    return {"source": cfg.calib, "nsamples": cfg.nsamples, "seqlen": cfg.seqlen, "seed": cfg.seed,
            "sampler": "document" if cfg.calib == "c4" else "stream", "windows": windows}


def ppl_entry(cfg, dataset: str, ppl: float, windows, add_bos: bool, seconds: float) -> dict[str, Any]:
    """One dataset's perplexity and the text it was measured on."""
    return {"dataset": dataset, "ppl": ppl, "windows": int(len(windows)), "tokens": int(windows.numel()),
            "seqlen": cfg.seqlen, "max_windows": cfg.eval_windows, "bos": add_bos, "seconds": seconds}


def finish_record(rec: dict[str, Any], eval_seconds: float, peak_mb: float, increase_mb: float,
                  device: str) -> dict[str, Any]:
    """Seconds, memory and provenance: what a finished record says about how it was made. Memory
    is the process peak (CPU: resident set, includes the model and runtime; CUDA: allocated) and
    the increase over the start of the run (calibration activations, statistics, evaluation)."""
    rec["seconds"] = {"prune": rec.get("prune", {}).get("seconds", {}).get("total"), "eval": eval_seconds}
    rec["peak_memory_mb"] = peak_mb
    rec["peak_memory_increase_mb"] = increase_mb
    rec["provenance"] = provenance(device)
    return rec


FINISHED = ("complete", "diverged")  # a diverged run is a result too: reused, not recomputed


# --- reading one back --------------------------------------------------------------------------
def load_record(cfg, runs_dir: str | os.PathLike, score_fn: Callable | None = None) -> dict | None:
    """The finished record of `cfg` in `runs_dir` as stored, or None (missing, partial, outdated,
    or made from other weights than the model's cache now holds). An unreadable record (truncated,
    not JSON) is moved aside to `<id>.json.unreadable`, with a warning naming it, and recomputed."""
    from wanda_core.models.loaders import expected_weights_sha256

    path = Path(runs_dir) / f"{record_id(cfg, score_fn)}.json"
    rec = read_json(path)
    if rec is None and path.is_file():
        bad = path.with_name(path.name + ".unreadable")
        os.replace(path, bad)
        log.warning("run record %s is unreadable (truncated or not JSON): kept as %s; recomputing it", path, bad)
    if rec is None or rec.get("status") not in FINISHED or rec.get("record_version") != RECORD_VERSION:
        return None
    made, now = (rec.get("model") or {}).get("weights_sha256"), expected_weights_sha256(cfg.model)
    if made and now and made != now:
        log.warning("run record %s was made from other weights of %s (sha256 %s..., the cache holds %s...): "
                    "recomputing it", path, cfg.model, made[:12], now[:12])
        return None
    return rec


def ppl_done(rec, cfg, ds) -> bool:
    """The record holds ds's perplexity measured with cfg's window length and count."""
    p = (rec or {}).get("results", {}).get("ppl", {}).get(ds)
    return bool(p) and p["seqlen"] == cfg.seqlen and p["max_windows"] == cfg.eval_windows


def tasks_done(rec, cfg) -> bool:
    if not cfg.tasks:
        return True
    z = (rec or {}).get("results", {}).get("zeroshot")
    return bool(z) and all(t in z.get("tasks", {}) for t in cfg.tasks) and z.get("limit") == cfg.task_limit \
        and z.get("task_dir") == cfg.task_dir and z.get("task_source", "hub") == cfg.task_source


def is_complete(rec, cfg) -> bool:
    if rec is not None and rec.get("status") == "diverged" and (rec.get("first_nonfinite") or {}).get("stage") \
            not in ("eval", "accuracy"):
        return True  # it diverged before any evaluation: there is nothing to evaluate
    return rec is not None and rec.get("status") in FINISHED and all(ppl_done(rec, cfg, d) for d in cfg.eval) \
        and tasks_done(rec, cfg)
