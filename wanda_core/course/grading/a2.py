"""Assignment 2 (prune a real model): check_engine_score, check_prune_records,
check_outlier_features, check_pruned_fraction.

    from wanda_core.course import grading
    grading.check_prune_records(yours, wanda_lib)   # records returned by runner.run
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from wanda_core.prune import masks as _masks
from wanda_core.prune import scores as _scores
from wanda_core.course.grading.a1 import _wanda_hints
from wanda_core.course.grading.checks import CheckResult, Case, _call, _finish, _gen, _guarded, _hidden_layer, _mask_diff, _run, _stats
from wanda_core.runs.records import ppl

# --- assignment 2: prune a real model ---------------------------------------------------------
@_guarded("engine_score")
def check_engine_score(fn, strict: bool = False) -> CheckResult:
    """A score to plug into the engine: shape, finite, W untouched, and masks equal to Wanda's."""
    W, s = _hidden_layer(8, 16, 51)
    name = getattr(fn, "__name__", "score")

    def shape_ok():
        got = _call(fn, name, W.clone(), s)
        try:
            _scores.check_score_output(got, W, name)
        except (TypeError, ValueError) as e:
            return False, f"the engine would refuse it: {e}", ""
        return True, "", ""

    def untouched():
        Wc = W.clone()
        _call(fn, name, Wc, s)
        if not torch.equal(Wc, W):
            return False, f"{name} changed W in place: in the engine that W is the model's own weight", \
                "compute a new tensor (W.abs() makes a copy; W.abs_() or W *= ... do not)"
        return True, "", ""

    def same_masks(structure):
        def thunk():
            got = _call(fn, name, W.clone(), s)
            if not isinstance(got, torch.Tensor) or got.shape != W.shape:
                return False, "not a tensor shaped like W (see the first case)", ""
            ref = _scores.wanda(W, s)
            if structure == "2:4":
                exp, mine = _masks.nm_mask(ref, 2, 4), _masks.nm_mask(got.float(), 2, 4)
            else:
                exp, mine = _masks.unstructured_mask(ref, 0.5, "row"), _masks.unstructured_mask(got.float(), 0.5, "row")
            if torch.equal(exp, mine):
                return True, "", ""
            hint = next((h for alt, h in _wanda_hints(W, s) if torch.equal(
                mine, _masks.nm_mask(alt, 2, 4) if structure == "2:4" else _masks.unstructured_mask(alt, 0.5, "row"))), "")
            return False, "the masks your score gives differ from Wanda's: " + _mask_diff(exp, mine), hint
        return thunk

    def outlier():
        Wo = torch.ones(4, 8)
        sq = torch.ones(8)
        sq[5] = 10_000.0
        Wo[:, 5] = 0.05  # a small weight on a huge feature: |W| says prune, Wanda says keep
        got = _call(fn, name, Wo.clone(), _stats(sq))
        if not isinstance(got, torch.Tensor) or got.shape != Wo.shape:
            return False, "not a tensor shaped like W (see the first case)", ""
        pruned = _masks.unstructured_mask(got.float(), 0.5, "row")[:, 5]
        if pruned.any():
            return False, (f"column 5 (weights 0.05, activation norm 100 against 1 elsewhere) is pruned in "
                           f"{int(pruned.sum())} of 4 rows; Wanda keeps it: 0.05 * 100 = 5 > 1 * 1"), \
                "does your score use the activations (stats.input_norm)?"
        return True, "", ""

    cases = [("returns one finite score per weight", shape_ok), ("leaves W unchanged", untouched),
             ("per-row 50% mask equals Wanda's (hidden 8x16)", same_masks("unstructured")),
             ("2:4 mask equals Wanda's (hidden 8x16)", same_masks("2:4")),
             ("keeps a small weight on an outlier feature", outlier)]
    return _run("engine_score", name, fn, cases, strict)


@_guarded("prune_records")
def check_prune_records(yours: dict | None, library: dict, structures: Iterable[str] = ("unstructured", "2:4"),
                        sparsity: float = 0.5, tol: float = 0.01, strict: bool = False) -> CheckResult:
    """Your runs ({structure: the record run() returned, made with score_fn=your score}) checked
    per structure: the record used a custom score, has that structure and the target sparsity, and,
    where `library` holds wanda_core's Wanda record for the same structure, its perplexity is
    within `tol` (relative) of the library's."""
    structures = list(structures)
    res = CheckResult("prune_records")
    if not yours:
        res.not_attempted = "no records of your own runs yet: fill in prune_with (it must return run(...)'s record)"
        res.cases = [Case(f"{s}: your run", False, res.not_attempted) for s in structures]
        return _finish(res, strict)
    for structure in structures:
        rec = yours.get(structure) if isinstance(yours, dict) else None
        if rec is None:
            res.cases.append(Case(f"{structure}: your run exists", False, f"no record for structure {structure!r}"))
            continue
        if not isinstance(rec, dict) or "results" not in rec:
            res.cases.append(Case(f"{structure}: your run exists", False,
                                  f"expected the record run(...) returns (a dict), got {type(rec).__name__}",
                                  "return the value of run(cfg, runs_dir, score_fn=...) itself"))
            continue
        c = rec.get("config", {})
        if rec.get("custom_score") is None:
            res.cases.append(Case(f"{structure}: made with your score", False,
                                  f"this record was made with the built-in score {(rec.get('prune_fields') or {}).get('score')!r}",
                                  "pass your function: run(cfg, runs_dir, score_fn=score_fn)"))
        else:
            res.cases.append(Case(f"{structure}: made with your score", True, f"score_fn {rec['custom_score']['name']}"))
        ok = c.get("structure") == structure
        res.cases.append(Case(f"{structure}: structure", ok, "" if ok else
                              f"expected structure {structure!r}, got {c.get('structure')!r}",
                              "" if ok else "pass structure=structure to P.config(...)"))
        got_sp = ((rec.get("prune") or {}).get("sparsity") or {}).get("overall", 0.0)
        ok = abs(got_sp - sparsity) < 0.01
        res.cases.append(Case(f"{structure}: sparsity", ok, f"{got_sp:.1%} of the block weights pruned" if ok else
                              f"expected {sparsity:.0%} of the block weights pruned, got {got_sp:.1%}",
                              "" if ok else f"use sparsity={sparsity} and method='wanda'"))
        lib = library.get(structure) if library else None
        if lib is not None:
            mine, ref = ppl(rec), ppl(lib)
            ok = math.isfinite(mine) and abs(mine - ref) <= tol * ref
            res.cases.append(Case(f"{structure}: perplexity matches wanda_core's Wanda", ok,
                                  f"{mine:.3f} vs {ref:.3f}" if ok else
                                  f"expected {ref:.3f} (wanda_core's Wanda, same settings), got {mine:.3f}",
                                  "" if ok else "your score ranks weights differently (does check_engine_score "
                                  "pass?), or the settings differ (method, calibration, nsamples, eval_windows)"))
    return _finish(res, strict)


def _index_list(x, name) -> tuple[list[int] | None, str]:
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool:
            return None, f"{name} returned a bool mask; return the indices (e.g. torch.nonzero(...).flatten())"
        x = x.reshape(-1).tolist()
    if not isinstance(x, (list, tuple)) or not all(isinstance(v, int) for v in x):
        return None, f"{name} returned {type(x).__name__}, expected a 1-D tensor (or list) of feature indices"
    return [int(v) for v in x], ""


@_guarded("outlier_features")
def check_outlier_features(fn, strict: bool = False) -> CheckResult:
    """fn(norms, factor) -> sorted indices j with norms[j] > factor * norms.median()."""
    g = _gen(61)
    rnd = torch.rand(63, generator=g) + 0.5
    rnd[[7, 40, 12]] = torch.tensor([30.0, 55.0, 9.0])
    cases_in = [
        ("one outlier among 5", torch.tensor([1.0, 1.2, 50.0, 0.9, 1.1]), 10.0),
        ("two outliers, result sorted", torch.tensor([80.0, 1.0, 1.0, 2.0, 40.0, 1.5, 1.0]), 10.0),
        ("no outliers gives an empty result", torch.tensor([1.0, 2.0, 3.0]), 10.0),
        ("strictly greater than factor x median", torch.tensor([1.0, 1.0, 10.0, 10.5, 1.0]), 10.0),
        ("random 63 features, factor 5 (hidden)", rnd, 5.0),
    ]

    def case(norms, factor):
        def thunk():
            got = _call(fn, "outlier_features", norms.clone(), factor)
            got, err = _index_list(got, "outlier_features")
            if got is None:
                return False, err, ""
            exp = torch.nonzero(norms > factor * norms.median()).flatten().tolist()
            if got == exp:
                return True, "", ""
            hint = ""
            if sorted(got) == exp:
                hint = "right features, wrong order: return them sorted by index"
            elif got == torch.nonzero(norms >= factor * norms.median()).flatten().tolist():
                hint = "use a strict comparison (>), not >="
            elif got == torch.nonzero(norms > factor * norms.mean()).flatten().tolist():
                hint = "compare with the median (norms.median()), not the mean: outliers pull the mean up"
            return False, f"expected features {exp}, got {got}", hint
        return thunk

    return _run("outlier_features", "outlier_features", fn, [(n, case(v, f)) for n, v, f in cases_in], strict)


@_guarded("pruned_fraction")
def check_pruned_fraction(fn, strict: bool = False) -> CheckResult:
    """fn(mask, features) -> fraction (float) of the weights in the columns `features` that are pruned."""
    m = torch.tensor([[True, False, True], [True, True, False]])
    g = _gen(71)
    big = torch.rand(10, 30, generator=g) < 0.4
    feats = torch.tensor([2, 5, 17, 29])
    cases_in = [("one column, all pruned", m, torch.tensor([0]), 1.0),
                ("two columns, half pruned", m, torch.tensor([1, 2]), 0.5),
                ("random 10x30 mask, 4 columns (hidden)", big, feats, float(big[:, feats].float().mean()))]

    def case(mask, features, exp):
        def thunk():
            got = _call(fn, "pruned_fraction", mask.clone(), features.clone())
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if not isinstance(got, (int, float)):
                return False, f"pruned_fraction returned {type(got).__name__}, expected a number", ""
            if abs(got - exp) < 1e-6:
                return True, "", ""
            hint = "a fraction is between 0 and 1: divide by the number of weights in those columns" if got > 1 else ""
            if abs(got - (1 - exp)) < 1e-6:
                hint = "that is the fraction KEPT: True in the mask means pruned"
            elif int(features.max()) < mask.shape[0] and abs(got - float(mask[features].float().mean())) < 1e-6:
                hint = "features are input features, i.e. COLUMNS of the mask: mask[:, features]"
            return False, f"expected {exp:.4f}, got {got:.4f}", hint
        return thunk

    return _run("pruned_fraction", "pruned_fraction", fn, [(n, case(a, b, e)) for n, a, b, e in cases_in], strict)
