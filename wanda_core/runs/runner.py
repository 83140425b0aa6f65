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
weights, a block's output, a window's loss: prune/finite.py) makes the record `status: "diverged"`
with `first_nonfinite` naming the place; its perplexity is None, never NaN. Each record carries
`model.weights_sha256`, the identity of the weights it pruned (the cache manifest's for embedded
models), and is not reused once the cache holds other weights.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from wanda_core.models import data, loaders as models
from wanda_core.prune import engine
from wanda_core.prune.blocks import find_blocks, find_linears
from wanda_core.runs.config import RunConfig, torch_dtype
from wanda_core.evaluation.perplexity import perplexity
from wanda_core.prune.finite import NonFinite, check_weights, describe
from wanda_core.runs.io_errors import check_writable
from wanda_core.runs.memory import PeakMemory, release_freed_memory
from wanda_core.runs.records import (atomic_write_json, calibration_entry, finish_record, is_complete, load_record,
                                     new_record, ppl_done, ppl_entry, read_json, record_id, tasks_done)

log = logging.getLogger(__name__)

_MODEL_CACHE: dict[tuple, Any] = {}  # (name, dtype, device) -> [model, tok, info, handed out before]
_COLLECTING: list | None = None  # set by `collecting()`: run() records its configuration instead of running


class PlanStop(BaseException):
    """Raised when code running under `collecting()` reads a planned (not yet made) record or asks
    for a model: the configurations asked for so far are collected, nothing else is done. A
    BaseException, so no `except Exception` in an experiment swallows it."""


class Planned:
    """What run() returns under `collecting()`: a stand-in record that stops its reader (PlanStop).
    Lists of them can be built and concatenated, so every run_many call before the first read counts."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def _stop(self, *a, **k):
        raise PlanStop(f"planned run {self.cfg.method} of {self.cfg.model} has no record yet")

    __getitem__ = get = __iter__ = __len__ = __contains__ = keys = items = _stop


class collecting:
    """`with collecting() as found:` -- every run() (and so run_many) inside appends
    (config, score_fn) to `found` and returns a Planned stand-in; get_model raises PlanStop. This is
    how `wanda_core.cluster.plan` lists the runs a chapter needs from the experiments' own code."""

    def __enter__(self) -> list:
        global _COLLECTING
        self._outer, _COLLECTING = _COLLECTING, []
        return _COLLECTING

    def __exit__(self, *exc):
        global _COLLECTING
        _COLLECTING = self._outer


def get_model(cfg: RunConfig):
    """The model with its original (dense) weights: loaded once per process, and reloaded (the
    tokenizer kept) after a run has handed it out, rather than restored from a second copy of the
    weights held in memory (a reload of the cached safetensors costs about a second at 135M)."""
    if _COLLECTING is not None:
        raise PlanStop(f"a plan loads no model ({cfg.model})")
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


def _block_linear_weights(model) -> dict[str, torch.Tensor]:
    return {f"{bi}.{name}": layer.weight for bi, b in enumerate(find_blocks(model))
            for name, layer in find_linears(b).items()}


def run(cfg: RunConfig, runs_dir: str | os.PathLike = "runs", score_fn: Callable | None = None,
        force: bool = False, progress: bool = True, save_model: str | None = None) -> dict[str, Any]:
    """Prune and evaluate as `cfg` says, or return the finished record. See the module docstring."""
    cfg.validate()
    if _COLLECTING is not None:
        _COLLECTING.append((cfg, score_fn))
        return Planned(cfg)
    runs_dir = Path(runs_dir)
    rid = record_id(cfg, score_fn)
    path = runs_dir / f"{rid}.json"
    rec = None if force else load_record(cfg, runs_dir, score_fn)
    if is_complete(rec, cfg) and save_model is None:
        return rec
    if cfg.tasks:
        from wanda_core.evaluation.tasks import check_tasks

        check_tasks(list(cfg.tasks), cfg.task_dir, cfg.task_source)
    check_writable(runs_dir)  # a folder that cannot be written fails now, not after the prune

    model, tok, info = get_model(cfg)
    if cfg.seqlen > info.max_seqlen:
        raise ValueError(f"seqlen {cfg.seqlen} is above {cfg.model}'s limit of {info.max_seqlen} tokens")
    engine.check_model_for(cfg, model)
    eval_sets = {ds: data.eval_windows(tok, ds, cfg.seqlen, cfg.eval_windows, info.add_bos) for ds in cfg.eval
                 if not ppl_done(rec, cfg, ds)}

    weights_path = runs_dir / "weights" / f"{rid}.pt"
    prev = rec  # load_record returns only finished records
    new = new_record(cfg, rid, info, prev, score_fn)
    diverged = None  # where pruning met its first NaN/inf (prune/finite.py), if it did
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
                new["calibration"] = None if calib is None else calibration_entry(cfg, where)
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
            entry = ppl_entry(cfg, ds, None, windows, info.add_bos, 0.0)
            try:
                entry["ppl"] = ppl = perplexity(model, windows, cfg.batch_size, progress)
                log.info("%s perplexity on %s: %.3f", cfg.method, ds, ppl)
            except NonFinite as e:
                entry["first_nonfinite"] = {**e.place, "dataset": ds}
                log.warning("%s on %s diverged: %s", cfg.method, ds, describe(entry["first_nonfinite"]))
            new["results"]["ppl"][ds] = {**entry, "seconds": time.perf_counter() - t}
        if cfg.tasks and not diverged and not tasks_done(prev, cfg):
            from wanda_core.evaluation.zeroshot import evaluate_tasks

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
    if not force and save_model is None and is_complete(load_record(cfg, runs_dir, score_fn), cfg):
        return load_record(cfg, runs_dir, score_fn)  # finished meanwhile by another worker: keep its record
    atomic_write_json(path, finish_record(new, eval_seconds, mem.mb, mem.increase_mb, cfg.device))
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


def dense_baseline(cfg: RunConfig) -> RunConfig:
    """The dense baseline matching `cfg` (same model, data, evaluation)."""
    return cfg.replace(method="dense", structure="unstructured", weight_update="none", score=None, group=None)
