"""The command line is generated from RunConfig: every field has a flag with its default, help and
valid values; a field added to RunConfig (here in a test-only subclass) appears with no CLI edit."""
import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from wanda_core.runs import config
from wanda_core.cli import build_parser, config_from_args
from wanda_core.runs.config import RunConfig


def _flag(name):
    return "--" + name.replace("_", "-")


def _options(sub, config_cls=RunConfig):
    """The options part of `python -m wanda_core <sub> --help`, on one line."""
    text = build_parser(config_cls)._subparsers._group_actions[0].choices[sub].format_help()
    return " ".join(text.split("options:", 1)[1].split())


def test_prune_help_lists_every_field_with_its_default():
    p = subprocess.run([sys.executable, "-m", "wanda_core", "prune", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split("options:", 1)[1].split())
    for f in dataclasses.fields(RunConfig):
        assert _flag(f.name) + " " in text, f.name
    assert text.count("(default: ") >= len(dataclasses.fields(RunConfig))
    for flag, shown in (("--sparsity", "0.5"), ("--nsamples", "128"), ("--eval-windows", "none"), ("--eval", "wiki"),
                        ("--dtype", "float32"), ("--weight-update", "none"), ("--blocksize", "128")):
        after = text.split(flag + " ", 1)[1]
        assert f"(default: {shown})" in after.split(" --", 1)[0], flag
    assert "--dtype {float32,float16,bfloat16}" in text and "--group {row,column,layer}" in text
    for flag in ("--save-model", "--runs-dir", "--force", "--quiet"):
        assert flag in text


def test_defaults_are_runconfigs():
    a = build_parser().parse_args(["prune"])
    assert config_from_args(a) == RunConfig()
    e = build_parser().parse_args(["evaluate"])
    assert config_from_args(e) == RunConfig(method="dense")


def test_evaluate_offers_the_dense_subset():
    ev = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    dests = {a.dest for a in ev._actions}
    for f in dataclasses.fields(RunConfig):
        assert (f.name in dests) == (f.name not in config.PRUNING_FIELDS), f.name
    assert {"model", "eval", "eval_windows", "tasks", "seqlen", "dtype", "device"} <= dests


def test_types_become_options():
    a = build_parser().parse_args(["prune", "--eval", "wiki", "wikitext2", "--tasks", "paper", "--eval-windows", "none",
                                   "--task-limit", "5", "--save-weights", "--extra", "note=hi", "n=3", "--dtype", "float16"])
    cfg = config_from_args(a)
    from wanda_core.evaluation.tasks import PAPER_TASKS

    assert cfg.eval == ("wiki", "wikitext2") and cfg.tasks == tuple(PAPER_TASKS)
    assert cfg.eval_windows is None and cfg.task_limit == 5 and cfg.save_weights is True
    assert cfg.extra == {"note": "hi", "n": 3} and cfg.dtype == "float16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune", "--dtype", "float64"])  # choices from config.DTYPES
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune", "--method", "dense"])  # evaluate is the dense path


@dataclass
class _Extended(RunConfig):
    new_switch: bool = False                               # a new on/off setting
    new_choice: Literal["uniform", "other"] = "uniform"    # a new setting with fixed values
    new_number: float = 5.0                                # a new number
    new_optional: float | None = None                      # a new optional number; none = off
    new_list: tuple[int, ...] = ()                         # a new list of whole numbers


def test_new_fields_appear_with_no_cli_edit():
    ap = build_parser(_Extended)
    text = _options("prune", _Extended)
    assert "--new-switch a new on/off setting (default: False)" in text
    assert "--new-optional NEW_OPTIONAL a new optional number; none = off (default: none)" in text
    a = ap.parse_args(["prune", "--new-switch", "--new-choice", "other", "--new-number", "7", "--new-optional", "none",
                       "--new-list", "1", "2"])
    cfg = config_from_args(a, _Extended)
    assert isinstance(cfg, _Extended)
    assert (cfg.new_switch, cfg.new_choice, cfg.new_number, cfg.new_optional, cfg.new_list) == (True, "other", 7.0, None, (1, 2))
    with pytest.raises(SystemExit):
        ap.parse_args(["prune", "--new-choice", "random"])
    assert "--new-switch" in _options("evaluate", _Extended)
