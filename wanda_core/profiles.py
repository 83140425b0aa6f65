"""Profiles: one small YAML file of parameters per way of building the book.

    smoke    a tiny random model and a little text (seconds; the tests run every notebook with it)
    default  the embedded SmolLM2-135M and Wikipedia text, on CPU
    paper    LLaMA/LLaMA-2 with WikiText-2 and C4 from the hub, on a GPU, 128 calibration windows

    from wanda_core.profiles import load_profile, base_config
    P = load_profile("default"); cfg = base_config(P, method="wanda")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROFILE_NAMES = ("smoke", "default", "paper")


def repo_root() -> Path:
    """The checkout holding wanda_core/ (profiles, notebooks and results live there)."""
    return Path(__file__).resolve().parent.parent


def load_profile(name: str) -> dict[str, Any]:
    path = Path(name) if name.endswith((".yaml", ".yml")) else repo_root() / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILE_NAMES)} or a path to a .yaml file")
    with open(path) as f:
        p = yaml.safe_load(f) or {}
    p["name"] = path.stem
    # $WANDA_RUNS_DIR moves the records (tests use a temporary one); else runs/<profile>/
    base = Path(os.environ.get("WANDA_RUNS_DIR", repo_root() / "runs"))
    p.setdefault("runs_dir", str(base / path.stem))
    return p


def base_config(profile: dict[str, Any], **overrides):
    """A RunConfig carrying the profile's model, data and calibration settings, then `overrides`."""
    from .config import RunConfig

    keys = ("model", "calib", "nsamples", "seqlen", "eval_windows", "device", "dtype", "batch_size", "task_dir", "task_limit")
    kw = {k: profile[k] for k in keys if k in profile}
    if "eval" in profile:
        kw["eval"] = tuple(profile["eval"])
    kw.update(overrides)
    return RunConfig(**kw)
