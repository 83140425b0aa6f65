"""Command line: prune and/or evaluate a model, writing a run record.

    python -m wanda_core prune --method wanda --sparsity 0.5                  # embedded default
    python -m wanda_core prune --method sparsegpt --structure 2:4 --save-model out/
    python -m wanda_core prune --model meta-llama/Llama-2-7b-hf --calib c4 --eval wikitext2 \\
        --nsamples 128 --seqlen 4096 --device cuda --dtype float16 --tasks paper
    python -m wanda_core evaluate --model out/ --eval wiki --tasks wiki_lastword
    python -m wanda_core finetune --from runs/<id>.json --how lora --steps 50   # pruned with --save-weights
    python -m wanda_core show runs/<id>.json

The options are generated from RunConfig's fields (config.py): one flag per field, named after it
(`eval_windows` -> `--eval-windows`), with its default, its trailing comment as help and its
valid values; `evaluate` offers the fields that apply to a dense model. A tuple field takes
several values, a bool field is a switch, an optional number also accepts `none`.

Each run prints a one-line summary and the path of its record; a rerun with the same settings
reuses the record (use --force to recompute). A run that met a NaN or inf says DIVERGED and where.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from pathlib import Path

from wanda_core.runs import config
from wanda_core.runs.config import RunConfig
from wanda_core.prune.finite import first_nonfinite_text
from wanda_core.runs.io_errors import explain


def _none_or(tp):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else tp(text)

    parse.__name__ = tp.__name__  # argparse names the type in its error messages
    return parse


def _key_value(text: str) -> tuple[str, typing.Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def _show(default) -> str:
    if isinstance(default, tuple):
        return " ".join(map(str, default)) or "(none)"
    return "none" if default is None else str(default)


def _field_argument(f: dataclasses.Field, tp, help_text: str, choices: tuple | None) -> dict:
    """argparse keywords for one RunConfig field, from its type, default and choices."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    args = typing.get_args(tp)
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), tp) if optional else tp
    kw: dict = {"default": default, "help": f"{help_text} (default: {_show(default)})".replace("%", "%%")}
    if base is bool:
        kw["action"] = argparse.BooleanOptionalAction if default else "store_true"
    elif typing.get_origin(base) is tuple:
        kw.update(nargs="*" if not default else "+", type=typing.get_args(base)[0], metavar=f.name.upper().rstrip("S"))
    elif typing.get_origin(base) is dict:
        kw.update(nargs="*", type=_key_value, metavar="KEY=VALUE")
    elif typing.get_origin(base) is typing.Literal:
        kw.update(type=type(typing.get_args(base)[0]))
    else:
        kw["type"] = _none_or(base) if optional and base in (int, float) else base
    if choices is not None:
        kw["choices"] = choices
    return kw


def add_config_arguments(p: argparse.ArgumentParser, names, config_cls=RunConfig) -> None:
    """One option per field of `config_cls` in `names` (in declaration order)."""
    hints = typing.get_type_hints(config_cls)
    helps, choices = config.field_help(config_cls), config.field_choices(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name in names:
            valid = choices.get(f.name)
            if f.name == "method":  # `evaluate` is the dense path
                valid = tuple(m for m in valid if m != "dense")
            flag = f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
            p.add_argument(flag, dest=f.name, **_field_argument(f, hints[f.name], helps[f.name], valid))


def build_parser(config_cls=RunConfig) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m wanda_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    every = [f.name for f in dataclasses.fields(config_cls)]

    pr = sub.add_parser("prune", help="prune a model, evaluate it, write a run record")
    add_config_arguments(pr, every, config_cls)
    pr.add_argument("--save-model", default=None, metavar="DIR",
                    help="write the pruned model as a Hugging Face checkpoint (reloads with from_pretrained)")
    ev = sub.add_parser("evaluate", help="evaluate a model (dense, or one saved with --save-model)")
    add_config_arguments(ev, [n for n in every if n not in config.PRUNING_FIELDS], config_cls)
    for p in (pr, ev):
        p.add_argument("--runs-dir", default="runs", help="where run records are written (default: runs)")
        p.add_argument("--force", action="store_true", help="recompute even if a finished record exists")
        p.add_argument("--quiet", action="store_true", help="no progress bars or logs")

    from wanda_core.finetune import FinetuneConfig

    ft = sub.add_parser("finetune", help="fine-tune a pruned model (LoRA or masked dense), write its run record")
    add_config_arguments(ft, [f.name for f in dataclasses.fields(FinetuneConfig)], FinetuneConfig)
    ft.add_argument("--runs-dir", default=None, help="where its record goes (default: finetune/ beside the source record)")
    ft.add_argument("--force", action="store_true", help="train again even if a finished record exists")
    ft.add_argument("--quiet", action="store_true", help="no progress bars or logs")

    sh = sub.add_parser("show", help="print a run record's summary")
    sh.add_argument("record", help="path to a run record (.json)")
    from wanda_core.cluster import plan, sweep

    plan.add_parser(sub)   # every run the book needs for a profile, and which exist
    sweep.add_parser(sub)  # make the missing ones on a process pool, a Ray cluster or Slurm
    return ap


def config_from_args(a: argparse.Namespace, config_cls=RunConfig) -> RunConfig:
    """The RunConfig the parsed options describe (`evaluate`: method dense)."""
    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(config_cls) if hasattr(a, f.name)}
    kw = {k: tuple(v) if isinstance(v, list) and k != "extra" else v for k, v in kw.items()}
    if isinstance(kw.get("extra"), list):
        kw["extra"] = dict(kw["extra"])
    if "paper" in kw.get("tasks", ()):
        from wanda_core.evaluation.tasks import PAPER_TASKS

        kw["tasks"] = tuple(t for t in kw["tasks"] if t != "paper") + tuple(PAPER_TASKS)
    if a.command == "evaluate":
        kw["method"] = "dense"
    return config_cls(**kw)


def summary(rec: dict) -> str:
    c = rec["config"]
    parts = [f"{c['model']} {c['method']}"]
    if c["method"] != "dense":
        parts.append(c["structure"] if c["structure"] != "unstructured" else f"{rec['prune_fields']['sparsity']:.0%} unstructured")
        parts.append(f"actual sparsity {rec['prune']['sparsity']['overall']:.4f}")
    for ds, v in rec["results"].get("ppl", {}).items():
        if v.get("ppl") is None:
            parts.append(f"ppl[{ds}] diverged ({v['windows']}x{v['seqlen']} tokens)")
        else:
            parts.append(f"ppl[{ds}] {v['ppl']:.3f} ({v['windows']}x{v['seqlen']} tokens)")
    z = rec["results"].get("zeroshot")
    if z and z.get("tasks"):
        parts.append("acc " + " ".join(f"{t}={v['acc']:.3f}" for t, v in z["tasks"].items()) + f" mean={z['mean_acc']:.3f}")
    if rec.get("prune"):
        parts.append(f"prune {rec['prune']['seconds']['total']:.1f}s")
    if rec.get("status") == "diverged":
        parts.append(f"DIVERGED: {first_nonfinite_text(rec.get('first_nonfinite'))}")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(a, "quiet", False) else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "datasets", "lm_eval", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if a.command in ("plan", "sweep"):
        try:
            return a.func(a)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if a.command == "show":
        from wanda_core.runs.records import read_json

        rec = read_json(a.record)
        if isinstance(rec, dict) and rec.get("kind") == "finetune":
            from wanda_core.finetune.run import summary as finetune_summary

            print(finetune_summary(rec))
            return 0
        if not isinstance(rec, dict) or "config" not in rec:
            print(f"error: {a.record} is not a readable run record (missing, truncated or not JSON); "
                  f"delete it and rerun the command that made it", file=sys.stderr)
            return 2
        print(summary(rec))
        return 0
    if a.command == "finetune":
        return _finetune(a)
    try:
        cfg = config_from_args(a).validate()
        from wanda_core.runs.runner import run

        rec = run(cfg, a.runs_dir, force=a.force, progress=not a.quiet, save_model=getattr(a, "save_model", None))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder that cannot be written: one line, not a traceback
        print(f"error: {explain(e)}", file=sys.stderr)
        return 2
    print(summary(rec))
    print(f"record: {Path(a.runs_dir) / (rec['id'] + '.json')}")
    if rec.get("saved_model"):
        print(f"pruned model: {rec['saved_model']}")
    return 0


def _finetune(a: argparse.Namespace) -> int:
    """`finetune`: the FinetuneConfig the options describe, trained (or its record reused)."""
    from wanda_core.finetune import FinetuneConfig, finetune
    from wanda_core.finetune.run import summary

    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(FinetuneConfig)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
    try:
        rec = finetune(FinetuneConfig(**kw), a.runs_dir, force=a.force, progress=not a.quiet)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(rec))
    print(f"record: {rec['record_path']}")
    return 0
