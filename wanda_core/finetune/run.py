"""One fine-tuning run: train (LoRA or masked), evaluate before and after on the same windows, write the
record atomically, checkpoint and resume."""
from __future__ import annotations

import logging
import math
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from wanda_core.models import data
from wanda_core.runs.records import atomic_write_json, config_hash, provenance, read_json
from wanda_core.finetune.config import BOOTSTRAP, FINETUNE_RECORD_VERSION, FinetuneConfig
from wanda_core.finetune.source import (block_weights, check_disjoint, check_lora_targets, load_source, text_provenance,
                                        training_windows, zero_count)

log = logging.getLogger(__name__)


# --- statistics ----------------------------------------------------------------------------------
def paired_change(before: torch.Tensor, after: torch.Tensor, n_boot: int = BOOTSTRAP, seed: int = 0,
                  level: float = 0.95) -> dict[str, float]:
    """The change in log perplexity, mean(after - before) of the per-window NLLs, with a percentile
    bootstrap interval over windows (the same windows resampled for both: a paired comparison)."""
    before, after = before.double(), after.double()
    if before.shape != after.shape:
        raise ValueError(f"paired windows differ in number: {before.numel()} before, {after.numel()} after")
    d = after - before
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, d.numel(), (n_boot, d.numel()), generator=g)
    boot = d[idx].mean(dim=1)
    lo, hi = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.double)).tolist()
    return {"mean": float(d.mean()), "low": lo, "high": hi, "level": level, "resamples": n_boot,
            "ppl_ratio": math.exp(float(d.mean())), "ppl_ratio_low": math.exp(lo), "ppl_ratio_high": math.exp(hi)}


def ppl_interval(nll: torch.Tensor, n_boot: int = BOOTSTRAP, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Perplexity of per-window NLLs with a bootstrap interval over windows; the NLLs kept."""
    nll = nll.double()
    g = torch.Generator().manual_seed(seed)
    boot = nll[torch.randint(0, nll.numel(), (n_boot, nll.numel()), generator=g)].mean(dim=1)
    lo, hi = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.double)).tolist()
    return {"ppl": math.exp(float(nll.mean())), "low": math.exp(lo), "high": math.exp(hi), "level": level,
            "windows": nll.numel(), "nll": [round(float(x), 6) for x in nll]}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# --- the run -------------------------------------------------------------------------------------
def record_path(cfg: FinetuneConfig, src: dict, runs_dir: str | os.PathLike | None) -> Path:
    base = Path(runs_dir) if runs_dir else (Path(src["path"]).parent / "finetune" if src["kind"] == "record"
                                            else Path("runs") / "finetune")
    return base / f"{config_hash({'source': src['id'], **cfg.identity()})}.json"


def finetune(cfg: FinetuneConfig, runs_dir: str | os.PathLike | None = None, force: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Fine-tune the pruned model `cfg.from_record` names; the finished run record (reused if it exists)."""
    from wanda_core.evaluation.perplexity import window_nlls
    from wanda_core.runs.memory import PeakMemory

    cfg.validate()
    src = load_source(cfg)
    path = record_path(cfg, src, runs_dir)
    done = None if force else read_json(path)
    if done and done.get("status") == "complete" and done.get("record_version") == FINETUNE_RECORD_VERSION:
        return {**done, "record_path": str(path)}
    run_cfg = src["run_config"]
    device = cfg.device or run_cfg.device
    from wanda_core.runs.runner import get_model

    # through the runner's cache: a fresh copy of the weights, and the same tokenizer object, so the
    # tokenized training and evaluation texts are reused from one run to the next
    model, tok, info = get_model(run_cfg.replace(device=device, offload=False))
    if src["weights"]:
        state = torch.load(src["weights"], map_location=device)
        for n, p in block_weights(model).items():
            p.data.copy_(state[n])
        del state
    base = block_weights(model)
    before = zero_count(base)
    if before["zeros"] == 0:
        raise ValueError(f"--from {cfg.from_record!r}: its Linear weights have no zeros (a dense model); give a pruned one")
    if cfg.how == "lora":
        check_lora_targets(model, cfg.lora_targets)
    if cfg.seqlen > info.max_seqlen:
        raise ValueError(f"seqlen {cfg.seqlen} is above {run_cfg.model}'s limit of {info.max_seqlen} tokens")
    calib = (src["record"] or {}).get("calibration") or {}
    disjoint = check_disjoint(cfg.train_text, cfg.eval, calib.get("source"))
    exclude = []
    if calib.get("source") == cfg.train_text and calib.get("sampler", "stream") == "stream":
        exclude = [(w["start"], w["start"] + calib["seqlen"]) for w in calib.get("windows") or []]
    windows, where = training_windows(tok, cfg.train_text, cfg.seqlen, cfg.steps * cfg.batch_size, cfg.seed, exclude)
    where["calibration_windows_avoided"] = len(exclude)
    ev_seqlen, ev_n = run_cfg.seqlen, run_cfg.eval_windows
    eval_sets = {ds: data.eval_windows(tok, ds, ev_seqlen, ev_n, info.add_bos) for ds in cfg.eval}

    torch.manual_seed(cfg.seed)
    mask = None
    if cfg.how == "lora":
        from peft import LoraConfig, get_peft_model

        for p in model.parameters():
            p.requires_grad_(False)
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets), bias="none", task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # a deprecation inside transformers that peft triggers: not ours to fix
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing")
            model = get_peft_model(model, lcfg)
    else:
        mask = {n: (w != 0) for n, w in base.items()}
    named = dict(model.named_parameters())
    trainable = {n: p for n, p in named.items() if p.requires_grad}
    opt = torch.optim.AdamW(trainable.values(), lr=cfg.learning_rate, weight_decay=0.0)
    warm, total = cfg.warmup_steps, cfg.steps

    def factor(step: int) -> float:  # the Trainer's linear schedule
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def measure() -> dict[str, torch.Tensor]:  # per-window NLLs, dropout off
        model.eval()
        out = {ds: window_nlls(model, w, run_cfg.batch_size, progress=False) for ds, w in eval_sets.items()}
        model.train()
        return out

    ckpt = path.with_suffix(".ckpt.pt")
    state = {"step": 0, "losses": [], "tokens": 0, "curve": [], "seconds": 0.0, "before": None}
    if ckpt.is_file() and not force:
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        for n, t in saved["params"].items():
            trainable[n].data.copy_(t)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
        log.info("resuming %s from step %d", path.name, state["step"])
    from tqdm import tqdm

    with PeakMemory(device) as mem:
        before_path = path.parent / f"before-{config_hash({'source': src['id'], 'eval': cfg.eval, 'seqlen': ev_seqlen, 'windows': ev_n})}.json"
        if state["before"] is None:
            # the pruned model's per-window NLLs, shared by every run from the same source
            kept = read_json(before_path)
            nll0 = {ds: torch.tensor(v) for ds, v in kept.items()} if kept else measure()
            if not kept:
                atomic_write_json(before_path, {ds: v.tolist() for ds, v in nll0.items()})
            state["before"] = {ds: v.tolist() for ds, v in nll0.items()}
            state["curve"].append({"step": 0, **{ds: math.exp(float(v.double().mean())) for ds, v in nll0.items()}})
        t0 = time.perf_counter()  # training time, the evaluations at eval_at included
        model.train()
        bar = tqdm(range(state["step"], cfg.steps), desc=f"finetune {cfg.how}", disable=not progress,
                   initial=state["step"], total=cfg.steps)
        for step in bar:
            batch = windows[step * cfg.batch_size:(step + 1) * cfg.batch_size].to(device)
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
            loss.backward()
            if mask is not None:
                for n, w in base.items():
                    w.grad.mul_(mask[n])
            torch.nn.utils.clip_grad_norm_(trainable.values(), cfg.max_grad_norm)
            opt.step()
            if mask is not None:
                with torch.no_grad():
                    for n, w in base.items():
                        w.mul_(mask[n])
            sched.step()
            opt.zero_grad(set_to_none=True)
            value = loss.item()
            state["losses"].append(round(value, 6))
            state["tokens"] += int(batch.numel())
            state["step"] = step + 1
            bar.set_postfix(loss=f"{value:.3f}")
            if step + 1 in cfg.eval_at and step + 1 != cfg.steps:
                nll = measure()
                state["curve"].append({"step": step + 1, **{ds: math.exp(float(v.double().mean())) for ds, v in nll.items()}})
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                state["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                _save_checkpoint(ckpt, trainable, opt, sched, state)
        bar.close()
        train_seconds = state["seconds"] + time.perf_counter() - t0
        t1 = time.perf_counter()
        nll1 = measure()
        state["curve"].append({"step": cfg.steps, **{ds: math.exp(float(v.double().mean())) for ds, v in nll1.items()}})
        eval_seconds = time.perf_counter() - t1

    after = zero_count(base)
    sparsity: dict[str, Any] = {"before": before, "after": after}
    if mask is not None:
        sparsity["same_positions"] = all(bool(((w == 0) == ~mask[n]).all()) for n, w in base.items())
        sparsity["pruned_weights_nonzero"] = sum(int(((w != 0) & ~mask[n]).sum()) for n, w in base.items())
    else:
        sparsity["merged"] = merged_sparsity(model, base)
    rec: dict[str, Any] = {
        "id": path.stem, "kind": "finetune", "status": "complete", "record_version": FINETUNE_RECORD_VERSION,
        "config": cfg.to_dict(), "identity": cfg.identity(),
        "source": {"kind": src["kind"], "path": src["path"], "id": src["id"], "weights": src["weights"],
                   "run_config": run_cfg.to_dict(),
                   "prune_fields": (src["record"] or {}).get("prune_fields"),
                   "ppl": (src["record"] or {}).get("results", {}).get("ppl")},
        "model": {"name": info.name, "source": info.source, "params": info.params},
        "training_text": {**text_provenance(cfg.train_text), **where, "seqlen": cfg.seqlen,
                          "disjoint": disjoint},
        "steps": cfg.steps, "tokens_seen": state["tokens"], "lr": cfg.learning_rate, "batch_size": cfg.batch_size,
        "trainable_params": sum(p.numel() for p in trainable.values()),
        "loss_curve": state["losses"],
        "ppl_curve": state["curve"],
        "ppl": {ds: {"seqlen": ev_seqlen, "max_windows": ev_n, "bos": info.add_bos,
                     "before": ppl_interval(torch.tensor(state["before"][ds])),
                     "after": ppl_interval(nll1[ds]),
                     "log_ppl_change": paired_change(torch.tensor(state["before"][ds]), nll1[ds])}
                for ds in cfg.eval},
        "sparsity": sparsity,
        "seconds": {"train": train_seconds, "eval_after": eval_seconds},
        "peak_memory_mb": mem.mb, "peak_memory_increase_mb": mem.increase_mb,
        "provenance": {**provenance(device), "peft": _peft_version(), "git_commit": git_commit()},
    }
    if cfg.how == "lora":
        adapter = path.with_suffix(".adapter.pt")
        _atomic_torch_save({n: p.detach().cpu() for n, p in trainable.items()}, adapter)
        rec["adapter"] = str(adapter)
    elif cfg.save_weights:
        out = path.with_suffix(".weights.pt")
        _atomic_torch_save({n: p.detach().cpu() for n, p in model.state_dict().items()}, out)
        rec["weights"] = str(out)
    atomic_write_json(path, rec)
    ckpt.unlink(missing_ok=True)
    return {**read_json(path), "record_path": str(path)}


def merged_sparsity(model, base: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The block Linears' zeros if every adapter were merged into its base weight (W + scale * B A)."""
    delta = {}
    for _, m in model.named_modules():
        if hasattr(m, "lora_A") and hasattr(m, "base_layer") and "default" in getattr(m, "lora_A", {}):
            delta[id(m.base_layer.weight)] = m.get_delta_weight("default").detach()
    merged = {n: (w.detach() + delta[id(w)]) if id(w) in delta else w.detach() for n, w in base.items()}
    out = zero_count(merged)
    out["adapted_layers"] = len(delta)
    return out


def _peft_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("peft")
    except metadata.PackageNotFoundError:
        return None


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_checkpoint(path: Path, trainable, opt, sched, state) -> None:
    _atomic_torch_save({"params": {n: p.detach().cpu() for n, p in trainable.items()}, "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "state": state}, path)


def summary(rec: dict[str, Any]) -> str:
    """One line: the method, perplexity before -> after with the paired change, the sparsity check."""
    src = rec["source"]["run_config"]
    parts = [f"{src['model']} {src['method']} {src['structure']} + {rec['config']['how']} {rec['steps']} steps"]
    for ds, v in rec["ppl"].items():
        c = v["log_ppl_change"]
        parts.append(f"ppl[{ds}] {v['before']['ppl']:.3f} -> {v['after']['ppl']:.3f} "
                     f"(x{c['ppl_ratio']:.3f}, 95% CI x{c['ppl_ratio_low']:.3f}..x{c['ppl_ratio_high']:.3f}, "
                     f"{v['before']['windows']} windows)")
    s = rec["sparsity"]
    parts.append(f"zeros {s['before']['zeros']} -> {s['after']['zeros']}")
    if "merged" in s:
        parts.append(f"merged adapter sparsity {s['merged']['sparsity']:.4f}")
    parts.append(f"train {rec['seconds']['train']:.1f}s")
    return " | ".join(parts)
