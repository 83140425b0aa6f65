"""Profiles: one small YAML file of parameters per way of building the book, typed and validated.

    smoke    a tiny random model and a little text (seconds; the tests run every chapter with it)
    default  the embedded SmolLM2-135M and Wikipedia text, on CPU
    paper    LLaMA/LLaMA-2 with WikiText-2 and C4 from the hub, on a GPU, 128 calibration windows

    from wanda_core.study.profiles import load_profile
    P = load_profile("default")          # a Profile: every key checked, unknown keys refused
    cfg = P.config(method="wanda")       # a RunConfig with the profile's model, data and windows

Each field below is declared once, with why it has its default; a YAML file sets only what differs.
There is one evaluation size per profile (`eval_windows`), so no two numbers of the book are
perplexities measured on different amounts of text.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wanda_core.paths import repo_root

PROFILE_NAMES = ("smoke", "default", "paper", "scale")

# Table 2's configurations (method, structure): dense once, each pruning method at 50% unstructured
# and 2:4. Profiles name them (ladder_task_configs) by config_key.
TABLE2_CONFIGS = (("dense", "unstructured"),) + tuple((m, s) for s in ("unstructured", "2:4")
                                                      for m in ("magnitude", "sparsegpt", "wanda"))


def config_key(method: str, structure: str) -> str:
    """The short key of a configuration in tables and profiles: "dense", "wanda 50%", "sparsegpt 2:4"."""
    return "dense" if method == "dense" else f"{method} {'50%' if structure == 'unstructured' else structure}"


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    model: str = "smollm2-135m"            # the embedded default model
    models: tuple[str, ...] = ()            # extra models a chapter compares (paper: LLaMA sizes; the ladder)
    calib: str = "wiki"                     # calibration text source
    eval: tuple[str, ...] = ("wiki",)       # perplexity datasets
    nsamples: int = 32                      # calibration windows (paper: 128)
    seqlen: int = 256                       # tokens per window (paper: 2048 LLaMA, 4096 LLaMA-2)
    eval_windows: int | None = 16           # evaluation windows of seqlen tokens, one size everywhere; None = all
    batch_size: int = 8                     # windows per forward (speed only)
    seeds: tuple[int, ...] = (0, 1, 2)      # calibration seeds for the variance studies
    calib_sizes: tuple[int, ...] = (1, 4, 32)   # calibration windows swept in the calibration chapter
    sparsities: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8)   # unstructured ratios swept
    successor_sparsities: tuple[float, ...] = (0.5, 0.6, 0.7)  # After Wanda: unstructured ratios (OWL's claim is at 0.7)
    successor_structures: tuple[str, ...] = ("2:4",)            # After Wanda: N:M settings, for the methods they apply to
    successor_zeroshot: bool = True         # After Wanda: zero-shot tasks on every run (off where the time budget is short)
    tasks: tuple[str, ...] = ()             # zero-shot tasks
    task_limit: int | None = 100            # examples per zero-shot task; None = the full sets
    task_dir: str | None = None             # local task files instead of the embedded/hub copies
    ladder_tasks: tuple[str, ...] = ()      # zero-shot tasks on every ladder rung (cost grows with size); () = perplexity only
    ladder_task_configs: tuple[str, ...] = ()  # which of a rung's configs get them ("dense", "wanda 50%", ...); () = all seven
    device: str = "cpu"                     # cpu or cuda
    dtype: str = "float32"                  # float32 on CPU, float16 on GPU as the paper
    runs_dir: str = ""                      # where records go; filled from $WANDA_RUNS_DIR or runs/<name>
    # what one run asks of a cluster (`python -m wanda_core sweep`; flags override)
    run_cpus: int = 1                       # CPU cores per run (its torch threads)
    run_gpus: int | None = None             # GPUs per run; None: 1 when device is cuda, else 0
    run_mem_gb: float | None = None         # memory per run; None: ask for none (the scheduler's default)
    run_minutes: int = 60                   # time limit per run (Slurm's --time)

    def config(self, **overrides):
        """A RunConfig carrying this profile's model, data and window settings, then `overrides`."""
        from wanda_core.runs.config import RunConfig

        kw = {k: getattr(self, k) for k in ("model", "calib", "eval", "nsamples", "seqlen", "eval_windows",
                                             "device", "dtype", "batch_size", "task_dir", "task_limit")}
        kw.update(overrides)
        return RunConfig(**kw)

    def replace(self, **kw) -> "Profile":
        return _check(dataclasses.replace(self, **kw))


_TYPES = typing.get_type_hints(Profile)


def _ok(value: Any, tp: Any) -> bool:
    """Is `value` of the declared type (ints accepted where floats are; bool never an int)?"""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(_ok(v, args[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    """int, int | None, tuple[float, ...]: how a type reads in an error message."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(args[0])}"
    if args:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _check(p: Profile) -> Profile:
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if not _ok(v, _TYPES[f.name]):
            raise ValueError(f"profile {p.name!r}: {f.name} = {v!r} is not {_type_name(_TYPES[f.name])}")
    for k in ("nsamples", "seqlen", "batch_size", "run_cpus", "run_minutes"):
        if getattr(p, k) < 1:
            raise ValueError(f"profile {p.name!r}: {k} must be >= 1, got {getattr(p, k)}")
    for k in ("eval_windows", "task_limit"):
        if getattr(p, k) is not None and getattr(p, k) < 1:
            raise ValueError(f"profile {p.name!r}: {k} must be >= 1 or null (all), got {getattr(p, k)}")
    for k in ("sparsities", "successor_sparsities"):
        if any(not 0 <= s < 1 for s in getattr(p, k)):
            raise ValueError(f"profile {p.name!r}: {k} must lie in [0, 1), got {list(getattr(p, k))}")
    if (p.run_gpus is not None and p.run_gpus < 0) or (p.run_mem_gb is not None and p.run_mem_gb <= 0):
        raise ValueError(f"profile {p.name!r}: run_gpus must be >= 0 and run_mem_gb > 0 (or null), "
                         f"got {p.run_gpus} and {p.run_mem_gb}")
    if any(c < 1 for c in p.calib_sizes):
        raise ValueError(f"profile {p.name!r}: calib_sizes must be >= 1, got {list(p.calib_sizes)}")
    if p.ladder_task_configs:
        valid = [config_key(m, st) for m, st in TABLE2_CONFIGS]
        bad = [c for c in p.ladder_task_configs if c not in valid]
        if bad:
            raise ValueError(f"profile {p.name!r}: ladder_task_configs {bad} are not configurations of a rung; "
                             f"valid: {', '.join(valid)}")
    if not p.seeds:
        raise ValueError(f"profile {p.name!r}: seeds must name at least one seed")
    try:  # the keys a RunConfig takes (dtype, device, eval...) are checked by its own validation
        p.config().validate()
    except ValueError as e:
        raise ValueError(f"profile {p.name!r}: {e}") from None
    return p


def load_profile(name: str) -> Profile:
    """Read profiles/<name>.yaml (or a path), check every key and type, and return a Profile."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else repo_root() / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILE_NAMES)} or a path to a .yaml file")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"profile {path}: expected a mapping of key: value, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hints = "".join(f" ({k}: did you mean {c[0]}?)" for k, c in close.items() if c)
        raise ValueError(f"profile {path.name}: unknown key(s) {', '.join(unknown)}{hints}; valid keys: {', '.join(sorted(known))}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    # $WANDA_RUNS_DIR moves the records (tests use a temporary one); else runs/<profile>/
    base = Path(os.environ.get("WANDA_RUNS_DIR", repo_root() / "runs"))
    kw.setdefault("runs_dir", str(base / path.stem))
    return _check(Profile(name=path.stem, **kw))
