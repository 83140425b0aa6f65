"""Command line: prune and/or evaluate a model, writing a run record.

    python -m wanda_core prune --method wanda --sparsity 0.5                  # embedded default
    python -m wanda_core prune --method sparsegpt --structure 2:4 --save-model out/
    python -m wanda_core prune --model meta-llama/Llama-2-7b-hf --calib c4 --eval wikitext2 \\
        --nsamples 128 --seqlen 4096 --device cuda --dtype float16 --tasks boolq rte
    python -m wanda_core evaluate --model out/ --eval wiki --tasks wiki_lastword
    python -m wanda_core show runs/<id>.json

Each run prints a one-line summary and the path of its record; a rerun with the same settings
reuses the record (use --force to recompute).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import METHODS, UPDATES, RunConfig
from .masks import GROUPS


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m",
                   help="embedded name (smollm2-135m, gemma3-270m, tiny-llama, tiny-gpt-neox, tiny-opt), "
                        "a local model directory, or a Hugging Face hub id (default: %(default)s)")
    p.add_argument("--eval", nargs="+", default=["wiki"], metavar="SOURCE",
                   help="perplexity datasets: wiki (embedded), wikitext2 (hub), or .txt/.jsonl files (default: wiki)")
    p.add_argument("--eval-windows", type=int, default=None, metavar="N",
                   help="evaluate on at most N windows (quick runs; recorded). Default: the whole split")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per calibration/evaluation window (default: %(default)s)")
    p.add_argument("--tasks", nargs="*", default=[], metavar="TASK",
                   help="zero-shot tasks through lm-eval: the offline proxies wiki_lastword wiki_nextsent, the paper's "
                        "boolq rte hellaswag winogrande arc_easy arc_challenge openbookqa (hub or --task-dir), "
                        "mmlu (5-shot), or 'paper' for the paper's seven")
    p.add_argument("--task-dir", default=None, help="directory of local JSONL task files instead of the hub")
    p.add_argument("--task-limit", type=int, default=None, help="at most this many examples per task")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (speed only; default: %(default)s)")
    p.add_argument("--runs-dir", default="runs", help="where run records are written (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute even if a finished record exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars or logs")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m wanda_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("prune", help="prune a model, evaluate it, write a run record",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pr.add_argument("--method", default="wanda", choices=[m for m in METHODS if m != "dense"],
                    help="pruning method (wanda-alpha: the official code's per-row alpha variant)")
    pr.add_argument("--sparsity", type=float, default=0.5, help="fraction of weights removed, in [0, 1) (unstructured)")
    pr.add_argument("--structure", default="unstructured", help="'unstructured' or N:M such as 2:4 or 4:8 (keep N of every M)")
    pr.add_argument("--group", default=None, choices=GROUPS,
                    help="comparison group override (default: layer for magnitude, row for wanda)")
    pr.add_argument("--score", default=None, help="score override: magnitude or wanda (ablations)")
    pr.add_argument("--weight-update", default="none", choices=UPDATES,
                    help="add SparseGPT's OBS update after a magnitude/wanda mask (appendix ablation)")
    pr.add_argument("--calib", default="wiki", help="calibration text: wiki (embedded), c4 (hub), or a .txt/.jsonl file")
    pr.add_argument("--nsamples", type=int, default=128, help="calibration windows")
    pr.add_argument("--seed", type=int, default=0, help="calibration sampling seed")
    pr.add_argument("--blocksize", type=int, default=128, help="SparseGPT block size")
    pr.add_argument("--percdamp", type=float, default=0.01, help="SparseGPT dampening (fraction of mean diag H)")
    pr.add_argument("--save-model", default=None, metavar="DIR",
                    help="write the pruned model as a Hugging Face checkpoint (reloads with from_pretrained)")
    _add_common(pr)

    ev = sub.add_parser("evaluate", help="evaluate a model (dense, or one saved with --save-model)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(ev)

    sh = sub.add_parser("show", help="print a run record's summary")
    sh.add_argument("record", help="path to a run record (.json)")
    return ap


def summary(rec: dict) -> str:
    c = rec["config"]
    parts = [f"{c['model']} {c['method']}"]
    if c["method"] != "dense":
        parts.append(c["structure"] if c["structure"] != "unstructured" else f"{rec['prune_fields']['sparsity']:.0%} unstructured")
        parts.append(f"actual sparsity {rec['prune']['sparsity']['overall']:.4f}")
    for ds, v in rec["results"].get("ppl", {}).items():
        parts.append(f"ppl[{ds}] {v['ppl']:.3f} ({v['windows']}x{v['seqlen']} tokens)")
    z = rec["results"].get("zeroshot")
    if z:
        parts.append("acc " + " ".join(f"{t}={v['acc']:.3f}" for t, v in z["tasks"].items()) + f" mean={z['mean_acc']:.3f}")
    if rec.get("prune"):
        parts.append(f"prune {rec['prune']['seconds']['total']:.1f}s")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(a, "quiet", False) else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "datasets", "lm_eval", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if a.command == "show":
        rec = json.loads(Path(a.record).read_text())
        print(summary(rec))
        return 0
    if "paper" in a.tasks:
        from .zeroshot import PAPER_TASKS

        a.tasks = [t for t in a.tasks if t != "paper"] + list(PAPER_TASKS)
    common = dict(model=a.model, eval=tuple(a.eval), eval_windows=a.eval_windows, seqlen=a.seqlen,
                  tasks=tuple(a.tasks), task_dir=a.task_dir, task_limit=a.task_limit, device=a.device,
                  dtype=a.dtype, batch_size=a.batch_size)
    if a.command == "prune":
        cfg = RunConfig(method=a.method, sparsity=a.sparsity, structure=a.structure, group=a.group, score=a.score,
                        weight_update=a.weight_update, calib=a.calib, nsamples=a.nsamples, seed=a.seed,
                        blocksize=a.blocksize, percdamp=a.percdamp, **common)
    else:
        cfg = RunConfig(method="dense", **common)
    try:
        cfg.validate()
        from .runner import run

        rec = run(cfg, a.runs_dir, force=a.force, progress=not a.quiet, save_model=getattr(a, "save_model", None))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(rec))
    print(f"record: {Path(a.runs_dir) / (rec['id'] + '.json')}")
    if rec.get("saved_model"):
        print(f"pruned model: {rec['saved_model']}")
    return 0
