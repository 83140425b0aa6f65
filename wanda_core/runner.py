"""The runner: config -> (load model and data, prune, evaluate) -> run record, reusing records.

    from wanda_core import RunConfig, run
    rec = run(RunConfig(method="wanda", sparsity=0.5, nsamples=32, eval_windows=32), runs_dir="runs/default")
    rec["results"]["ppl"]["wiki"]["ppl"]

A record is named by the hash of the fields that decide the pruned weights. Asking again for a
finished configuration returns the stored record without loading the model; asking for an
evaluation the record lacks (another dataset, zero-shot tasks) adds it, reusing the pruned
weights when `save_weights` kept them. A record holds one perplexity per dataset: asked for
with other windows (seqlen, eval_windows), it is evaluated again and replaced, since a profile
has one evaluation size and no two numbers of the book compare different amounts of text. Records are written atomically (records.py), so an
interrupted sweep resumes from the last finished configuration.

Every error about the configuration (bad values, unknown tasks, text too short, seqlen above the
model's limit, N:M not dividing a layer) and a runs folder that cannot be written are raised
before pruning starts.

A NaN or inf met on the way (the loaded weights, calibration statistics, a score, the pruned
weights, a block's output, a window's loss: finite.py) makes the record `status: "diverged"`
with `first_nonfinite` naming the place; its perplexity is None, never NaN. Each record carries
`model.weights_sha256`, the identity of the weights it pruned (the cache manifest's for embedded
models), and is not reused once the cache holds other weights.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from . import data, engine, models
from .config import RunConfig, torch_dtype
from .evaluate import perplexity
from .finite import NonFinite, check_weights, describe
from .io_errors import check_writable
from .weights_id import expected_weights_sha256
from .records import RECORD_VERSION, atomic_write_json, config_hash, provenance, read_json

log = logging.getLogger(__name__)

_MODEL_CACHE: dict[tuple, Any] = {}  # (name, dtype, device) -> [model, tok, info, handed out before]


def get_model(cfg: RunConfig):
    """The model with its original (dense) weights: loaded once per process, and reloaded (the
    tokenizer kept) after a run has handed it out, rather than restored from a second copy of the
    weights held in memory (a reload of the cached safetensors costs about a second at 135M)."""
    device = "cpu" if cfg.offload else cfg.device  # offload: the engine brings blocks to cfg.device
    key = (cfg.model, cfg.dtype, device)
    entry = _MODEL_CACHE.get(key)
    if entry is None or entry[3]:
        tok = entry[1] if entry else None  # the same tokenizer object: data.py caches streams by it
        _MODEL_CACHE.clear()  # one model at a time: memory matters more than reload time
        del entry
        release_freed_memory()
        model, tok2, info = models.load_model(cfg.model, torch_dtype(cfg.dtype), device)
        entry = _MODEL_CACHE[key] = [model, tok or tok2, info, False]
    entry[3] = True
    return entry[0], entry[1], entry[2]


def release_freed_memory() -> None:
    """Hand memory freed by Python and glibc back to the system (malloc_trim): a notebook kernel
    that has loaded, pruned and dropped several models otherwise keeps their pages resident, and
    every later run's peak starts from that much higher."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def _block_linear_weights(model) -> dict[str, torch.Tensor]:
    return {f"{bi}.{name}": layer.weight for bi, b in enumerate(models.find_blocks(model))
            for name, layer in models.find_linears(b).items()}


def _score_identity(score_fn: Callable | None) -> dict[str, str] | None:
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


def record_id(cfg: RunConfig, score_fn: Callable | None = None) -> str:
    f = cfg.prune_fields()
    if score_fn is not None:
        f["custom_score"] = _score_identity(score_fn)
    return config_hash(f)


def resident_bytes() -> int:
    """This process's resident set now (/proc/self/statm; the peak so far where there is no /proc)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated memory (CUDA) during a block."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.peak = 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self._stop = threading.Event()
            self.peak = self.start = resident_bytes()

            def sample():
                while not self._stop.wait(0.05):
                    self.peak = max(self.peak, resident_bytes())

            self._t = threading.Thread(target=sample, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._t.join()
            self.peak = max(self.peak, resident_bytes())

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def increase_mb(self) -> float:
        """Peak above what was held at the start (the model itself is held before)."""
        return round((self.peak - self.start) / 2**20, 1)


FINISHED = ("complete", "diverged")  # a diverged run is a result too: reused, not recomputed


def load_record(cfg: RunConfig, runs_dir: str | os.PathLike, score_fn: Callable | None = None) -> dict | None:
    """The finished record of `cfg` in `runs_dir` as stored, or None (missing, partial, outdated,
    or made from other weights than the model's cache now holds). An unreadable record (truncated,
    not JSON) is moved aside to `<id>.json.unreadable`, with a warning, and recomputed."""
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


def _ppl_done(rec, cfg, ds) -> bool:
    """The record holds ds's perplexity measured with cfg's window length and count."""
    p = (rec or {}).get("results", {}).get("ppl", {}).get(ds)
    return bool(p) and p["seqlen"] == cfg.seqlen and p["max_windows"] == cfg.eval_windows


def _tasks_done(rec, cfg) -> bool:
    if not cfg.tasks:
        return True
    z = (rec or {}).get("results", {}).get("zeroshot")
    return bool(z) and all(t in z.get("tasks", {}) for t in cfg.tasks) and z.get("limit") == cfg.task_limit \
        and z.get("task_dir") == cfg.task_dir and z.get("task_source", "hub") == cfg.task_source


def is_complete(rec, cfg) -> bool:
    if rec is not None and rec.get("status") == "diverged" and (rec.get("first_nonfinite") or {}).get("stage") \
            not in ("eval", "accuracy"):
        return True  # it diverged before any evaluation: there is nothing to evaluate
    return rec is not None and rec.get("status") in FINISHED and all(_ppl_done(rec, cfg, d) for d in cfg.eval) \
        and _tasks_done(rec, cfg)


def run(cfg: RunConfig, runs_dir: str | os.PathLike = "runs", score_fn: Callable | None = None,
        force: bool = False, progress: bool = True, save_model: str | None = None) -> dict[str, Any]:
    """Prune and evaluate as `cfg` says, or return the finished record. See the module docstring."""
    cfg.validate()
    runs_dir = Path(runs_dir)
    rid = record_id(cfg, score_fn)
    path = runs_dir / f"{rid}.json"
    rec = None if force else load_record(cfg, runs_dir, score_fn)
    if is_complete(rec, cfg) and save_model is None:
        return rec
    if cfg.tasks:
        from .zeroshot import check_tasks

        check_tasks(list(cfg.tasks), cfg.task_dir, cfg.task_source)
    check_writable(runs_dir)  # a folder that cannot be written fails now, not after the prune

    model, tok, info = get_model(cfg)
    if cfg.seqlen > info.max_seqlen:
        raise ValueError(f"seqlen {cfg.seqlen} is above {cfg.model}'s limit of {info.max_seqlen} tokens")
    engine.check_model_for(cfg, model)
    eval_sets = {ds: data.eval_windows(tok, ds, cfg.seqlen, cfg.eval_windows, info.add_bos) for ds in cfg.eval
                 if not _ppl_done(rec, cfg, ds)}

    weights_path = runs_dir / "weights" / f"{rid}.pt"
    prev = rec  # load_record returns only finished records
    new = {
        "id": rid,
        "status": "complete",
        "record_version": RECORD_VERSION,
        "config": cfg.to_dict(),
        "prune_fields": cfg.prune_fields(),
        "custom_score": _score_identity(score_fn),
        "model": {"name": info.name, "source": info.source, "params": info.params, "max_seqlen": info.max_seqlen,
                  "weights_sha256": info.weights_sha256},
        "results": {**prev["results"], "ppl": dict(prev["results"]["ppl"])} if prev else {"ppl": {}},
    }
    diverged = None  # where pruning met its first NaN/inf (finite.py), if it did
    with PeakMemory(cfg.device) as mem:
        t_prune = time.perf_counter()
        try:
            if prev and weights_path.is_file():
                state = torch.load(weights_path, map_location=cfg.device)
                for n, p in _block_linear_weights(model).items():
                    p.data.copy_(state[n])
                new.update({k: prev[k] for k in ("calibration", "prune") if k in prev})
                log.info("reusing pruned weights %s", weights_path)
            else:
                check_weights(model)  # corrupt inputs stop here, before pruning: stage "weights"
                calib, where = None, None
                if engine.needs_calibration(cfg, score_fn):
                    calib, where = data.calibration_windows(tok, cfg.calib, cfg.nsamples, cfg.seqlen, cfg.seed)
                new["calibration"] = None if calib is None else {
                    "source": cfg.calib, "nsamples": cfg.nsamples, "seqlen": cfg.seqlen, "seed": cfg.seed,
                    "sampler": "document" if cfg.calib == "c4" else "stream", "windows": where}
                log.info("pruning %s: %s %s sparsity %.2f", cfg.model, cfg.method, cfg.structure, cfg.target_sparsity)
                with PeakMemory("cpu") as pmem:  # the prune alone, as `make benchmark` measures it
                    report = engine.prune_model(model, cfg, calib, score_fn=score_fn, progress=progress)
                report["peak_memory_mb"] = pmem.mb
                new["prune"] = report
                if cfg.save_weights:
                    weights_path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = weights_path.with_suffix(f".tmp{os.getpid()}")
                    torch.save({n: p.detach().cpu() for n, p in _block_linear_weights(model).items()}, tmp)
                    os.replace(tmp, weights_path)
        except NonFinite as e:
            diverged = e.place
            new["prune"] = {"sparsity": engine.sparsity_report(model),
                            "seconds": {"total": time.perf_counter() - t_prune}, "diverged": True}
            new["results"] = {"ppl": {}}
            log.warning("%s %s diverged: %s; not evaluated", cfg.model, cfg.method, e)
        t_eval = time.perf_counter()
        for ds, windows in ({} if diverged else eval_sets).items():
            t = time.perf_counter()
            entry = {"dataset": ds, "ppl": None, "windows": int(len(windows)), "tokens": int(windows.numel()),
                     "seqlen": cfg.seqlen, "max_windows": cfg.eval_windows, "bos": info.add_bos}
            try:
                entry["ppl"] = ppl = perplexity(model, windows, cfg.batch_size, progress)
                log.info("%s perplexity on %s: %.3f", cfg.method, ds, ppl)
            except NonFinite as e:
                entry["first_nonfinite"] = {**e.place, "dataset": ds}
                log.warning("%s on %s diverged: %s", cfg.method, ds, describe(entry["first_nonfinite"]))
            new["results"]["ppl"][ds] = {**entry, "seconds": time.perf_counter() - t}
        if cfg.tasks and not diverged and not _tasks_done(prev, cfg):
            from .zeroshot import evaluate_tasks

            try:
                z = evaluate_tasks(model, tok, list(cfg.tasks), task_dir=cfg.task_dir, limit=cfg.task_limit,
                                   batch_size=cfg.batch_size, add_bos=info.add_bos, source=cfg.task_source)
                z.update(limit=cfg.task_limit, task_dir=cfg.task_dir)
            except NonFinite as e:
                z = {"tasks": {}, "first_nonfinite": e.place, "limit": cfg.task_limit, "task_dir": cfg.task_dir,
                     "task_source": cfg.task_source}
                log.warning("%s zero-shot diverged: %s", cfg.method, e)
            new["results"]["zeroshot"] = z
        eval_seconds = time.perf_counter() - t_eval
    places = [diverged] + [v.get("first_nonfinite") for v in new["results"]["ppl"].values()] \
        + [(new["results"].get("zeroshot") or {}).get("first_nonfinite")]
    first = next((p for p in places if p), None)
    if first:  # the record says where the first NaN/inf appeared; its numbers are not numbers
        new["status"], new["first_nonfinite"] = "diverged", first
    if save_model:
        save_pruned(model, tok, save_model)
        new["saved_model"] = str(save_model)
    new["seconds"] = {"prune": new.get("prune", {}).get("seconds", {}).get("total"), "eval": eval_seconds}
    # process peak (CPU: resident set, includes the model and runtime; CUDA: allocated) and the
    # increase over the start of this run (calibration activations, statistics, evaluation)
    new["peak_memory_mb"] = mem.mb
    new["peak_memory_increase_mb"] = mem.increase_mb
    new["provenance"] = provenance(cfg.device)
    atomic_write_json(path, new)
    return read_json(path)  # the same JSON types a later reuse returns (lists, not tuples)


def save_pruned(model, tok, out_dir: str | os.PathLike) -> None:
    """The pruned model as a Hugging Face checkpoint (reloads with from_pretrained)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def run_many(configs: Iterable[RunConfig], runs_dir: str | os.PathLike = "runs", desc: str = "runs",
             **kw) -> list[dict[str, Any]]:
    """`run` over several configurations, validated all first (so a typo fails before hours of work)."""
    from tqdm import tqdm

    configs = [c.validate() for c in configs]
    return [run(c, runs_dir, **kw) for c in tqdm(configs, desc=desc, disable=not kw.get("progress", True))]


def dense_then(cfg: RunConfig) -> RunConfig:
    """The dense baseline matching `cfg` (same model, data, evaluation)."""
    return cfg.replace(method="dense", structure="unstructured", weight_update="none", score=None, group=None)
