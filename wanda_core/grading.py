"""Grading for the course assignments (course/*.ipynb): checks with immediate, specific feedback.

Each check runs a student's function (or answer) on named cases, prints one short line per case,
and returns a `CheckResult`. A check never raises in a notebook: an unfilled starter prints

    wanda_score: not attempted yet -- NotImplementedError: fill in wanda_score first (...)

and a wrong answer prints which case failed, expected versus got, and a hint where the mistake is a
common one. With `strict=True` (the tests) a failed check raises one concise AssertionError.

    from wanda_core import grading
    r = grading.check_wanda_score(wanda_score)     # prints the verdict per case
    r.passed, r.n_passed, r.n_total, r.failed       # the result object
    grading.summary()                               # scoreboard of every check run in this kernel

Assignment 1 (scores and masks by hand): check_by_hand, check_magnitude_score, check_wanda_score,
check_row_mask, check_nm_mask. Assignment 2 (prune a real model): check_engine_score,
check_prune_records, check_outlier_features, check_pruned_fraction. Assignment 3 (investigation):
check_design, check_figure, check_writeup.

Machine-readable results: when $WANDA_GRADING_LOG names a file, every check appends one JSON line
{"check", "passed", "n_passed", "n_total", "failed", "messages", "not_attempted"} to it (the tests
execute the notebooks and read it).
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from . import masks as _masks
from . import scores as _scores
from .scores import LayerStats

__all__ = [
    "Case", "CheckResult", "summary", "reset", "results", "implemented", "attempt",
    "check_by_hand", "check_magnitude_score", "check_wanda_score", "check_row_mask", "check_nm_mask",
    "check_engine_score", "check_prune_records", "check_outlier_features", "check_pruned_fraction",
    "check_design", "check_figure", "check_writeup",
]

_PKG = str(Path(__file__).resolve().parent) + os.sep
_MAX_MSG = 400


# --- results ---------------------------------------------------------------------------------
@dataclass
class Case:
    """One graded case: its name, whether it passed, and what to tell the student."""

    name: str
    passed: bool
    message: str = ""   # expected versus got, or the error the student's code raised
    hint: str = ""      # a likely cause, when the mistake is a common one

    def line(self) -> str:
        if self.passed:
            return f"  ok    case '{self.name}'" + (f" ({self.message})" if self.message else "")
        out = f"  FAIL  case '{self.name}': {self.message}"
        if self.hint:
            out += f"\n        hint: {self.hint}"
        return out


@dataclass
class CheckResult:
    """What a check found; truthy when every case passed."""

    check: str
    cases: list[Case] = field(default_factory=list)
    not_attempted: str = ""  # set when the starter is still unfilled

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def n_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def n_total(self) -> int:
        return len(self.cases)

    @property
    def failed(self) -> list[Case]:
        return [c for c in self.cases if not c.passed]

    def __bool__(self) -> bool:
        return self.passed

    def report(self) -> str:
        if self.not_attempted:
            return f"{self.check}: not attempted yet -- {self.not_attempted}"
        head = f"{self.check}: all {self.n_total} cases passed" if self.passed else \
            f"{self.check}: {self.n_passed} of {self.n_total} cases passed"
        return "\n".join([head] + [c.line() for c in self.cases])

    def short(self) -> str:
        if self.not_attempted:
            return f"{self.check}: not attempted -- {self.not_attempted}"
        shown = self.failed[:2]
        fails = "; ".join(f"case '{c.name}': {_clip(c.message, 160)}" for c in shown)
        more = f" (and {len(self.failed) - 2} more)" if len(self.failed) > 2 else ""
        return f"{self.check}: {len(self.failed)} of {self.n_total} cases failed: {fails}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "n_passed": self.n_passed, "n_total": self.n_total,
                "failed": [c.name for c in self.failed], "not_attempted": bool(self.not_attempted),
                "messages": [self.not_attempted] if self.not_attempted else [c.message for c in self.failed]}

    def __repr__(self) -> str:  # short: the verdict itself was printed by the check
        state = "passed" if self.passed else ("not attempted" if self.not_attempted else "failed")
        return f"<CheckResult {self.check}: {self.n_passed}/{self.n_total} cases, {state}>"


_RESULTS: list[CheckResult] = []


def results() -> list[CheckResult]:
    """Every check run in this kernel, in order (the latest per check name counts in `summary`)."""
    return list(_RESULTS)


def reset() -> None:
    _RESULTS.clear()


def summary(strict: bool = False) -> dict[str, Any]:
    """Print a scoreboard of the checks run so far (latest result per check); return it as a dict."""
    latest: dict[str, CheckResult] = {}
    for r in _RESULTS:
        latest[r.check] = r
    passed = [n for n, r in latest.items() if r.passed]
    lines = [f"Checks passed: {len(passed)} of {len(latest)}"]
    for name, r in latest.items():
        if r.passed:
            lines.append(f"  ok    {name}")
        elif r.not_attempted:
            lines.append(f"  todo  {name}: not attempted yet")
        else:
            first = r.failed[0]
            lines.append(f"  FAIL  {name}: {len(r.failed)} case(s) failing, first: '{first.name}'")
    print("\n".join(lines))
    out = {"passed": len(passed), "total": len(latest), "checks": {n: r.passed for n, r in latest.items()}}
    _log({"check": "summary", **out})
    if strict and len(passed) < len(latest):
        raise AssertionError(f"{len(latest) - len(passed)} of {len(latest)} checks failing: "
                             + ", ".join(n for n, r in latest.items() if not r.passed))
    return out


def _log(obj: dict[str, Any]) -> None:
    path = os.environ.get("WANDA_GRADING_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def _finish(res: CheckResult, strict: bool, quiet: bool = False) -> CheckResult:
    _RESULTS.append(res)
    if not quiet:
        print(res.report())
    _log(res.to_dict())
    if strict and not res.passed:
        raise AssertionError(_clip(res.short(), 1200))
    return res


# --- calling student code without a traceback wall --------------------------------------------
class _NotDone(Exception):
    """The student's function still raises NotImplementedError (or the answer is still None)."""


class _Raised(Exception):
    """The student's function raised: the message says what and where, in one line."""


def _clip(s: str, n: int = _MAX_MSG) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def _user_frames(tb) -> list:
    """Frames of the student's own code: not torch, not the standard library, not wanda_core."""
    return [f for f in traceback.extract_tb(tb)
            if not f.filename.startswith(_PKG) and "site-packages" not in f.filename and "/lib/python" not in f.filename]


def _where(tb) -> str:
    """' (at line N of fn: `code`)' for the deepest frame in the student's own code."""
    frames = _user_frames(tb)
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (at line {f.lineno} of {f.name}:{code})"


def _call(fn: Callable, fn_name: str, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        frames = _user_frames(e.__traceback__)
        who = frames[-1].name if frames and frames[-1].name not in ("<module>", "<lambda>") else fn_name
        raise _NotDone(f"NotImplementedError: fill in {who} first (replace the `raise NotImplementedError` "
                       f"under # YOUR CODE HERE)") from None
    except Exception as e:  # noqa: BLE001 -- any error in student code becomes a one-line verdict
        raise _Raised(f"your {fn_name} raised {type(e).__name__}: {_clip(e, 200)}{_where(e.__traceback__)}") from None


def attempt(fn: Callable | None, *args, name: str | None = None, **kwargs):
    """Call a student's function from a driver cell: its value, or None after a one-line message
    (not filled in yet, or the error it raised and where) instead of a traceback."""
    name = name or getattr(fn, "__name__", "function")
    if fn is None or not callable(fn):
        print(f"skipped: {name} is not defined yet (run the cell that defines it)")
        return None
    try:
        return _call(fn, name, *args, **kwargs)
    except (_NotDone, _Raised) as e:
        print(f"skipped: {e}")
        return None


def implemented(fn: Callable | None, *probe_args) -> bool:
    """True if `fn` is defined and, called on `probe_args`, does not raise NotImplementedError.

    Notebooks use it to skip the cells that need a student's function until it is filled in."""
    if fn is None or not callable(fn):
        return False
    try:
        fn(*probe_args)
    except NotImplementedError:
        return False
    except Exception:  # noqa: BLE001 -- broken, but attempted: let the check report it
        return True
    return True


def _run(check: str, fn_name: str, fn, cases: list[tuple[str, Callable[[], tuple]]], strict: bool,
         quiet: bool = False) -> CheckResult:
    """Run `cases` (name, thunk -> (ok, message, hint)); stop at the first NotImplementedError."""
    res = CheckResult(check)
    if fn is None or (fn_name and not callable(fn)):
        res.not_attempted = f"{fn_name} is not defined (run the cell that defines it first)" if fn is None else \
            f"{fn_name} must be a function, got {type(fn).__name__}"
        res.cases = [Case(n, False, res.not_attempted) for n, _ in cases]
        return _finish(res, strict, quiet)
    for i, (name, thunk) in enumerate(cases):
        try:
            out = thunk()
            ok, msg, hint = (out + ("", ""))[:3]
            res.cases.append(Case(name, bool(ok), _clip(msg), _clip(hint)))
        except _NotDone as e:
            if i == 0:
                res.not_attempted = str(e)
            res.cases.append(Case(name, False, str(e)))
            res.cases += [Case(n, False, "not run: " + str(e)) for n, _ in cases[i + 1:]]
            break
        except _Raised as e:
            res.cases.append(Case(name, False, str(e)))
        except Exception as e:  # noqa: BLE001 -- an answer the checks did not foresee: a verdict, not a crash
            res.cases.append(Case(name, False, f"could not check this answer: {type(e).__name__}: {_clip(e, 200)}"))
    return _finish(res, strict, quiet)


def _guarded(check: str):
    """Whatever the answer, a check prints a verdict and returns a result: an answer shaped in a
    way no case foresaw becomes one failed case, not a traceback (strict mode still raises)."""
    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            try:
                return f(*args, **kwargs)
            except AssertionError:  # strict mode's verdict
                raise
            except Exception as e:  # noqa: BLE001
                res = CheckResult(check, [Case("answer can be checked", False,
                                               f"could not check this answer: {type(e).__name__}: {_clip(e, 200)}")])
                return _finish(res, bool(kwargs.get("strict", False)))
        return wrapper
    return deco


# --- formatting --------------------------------------------------------------------------------
def _bools(t: torch.Tensor) -> str:
    rows = ["[" + ",".join("T" if v else "F" for v in r) + "]" for r in t.reshape(-1, t.shape[-1]).tolist()]
    return rows[0] if t.dim() == 1 or t.shape[0] == 1 else "[" + ",".join(rows) + "]"


def _nums(t: torch.Tensor) -> str:
    def f(v):
        return f"{v:.4g}"

    if t.dim() <= 1:
        return "[" + ", ".join(f(v) for v in t.reshape(-1).tolist()) + "]"
    return "[" + ", ".join("[" + ", ".join(f(v) for v in r) + "]" for r in t.tolist()) + "]"


def _small(t: torch.Tensor) -> bool:
    return t.numel() <= 16


def _mask_diff(exp: torch.Tensor, got: torch.Tensor) -> str:
    if _small(exp):
        return f"expected mask {_bools(exp)}, got {_bools(got)} (T = pruned)"
    diff = (exp != got).nonzero().tolist()
    r, c = diff[0]
    word = lambda v: "T (pruned)" if v else "F (kept)"  # noqa: E731
    return (f"masks differ at {len(diff)} of {exp.numel()} positions, first at row {r}, column {c}: "
            f"expected {word(bool(exp[r, c]))}, got {word(bool(got[r, c]))}")


def _num_diff(exp: torch.Tensor, got: torch.Tensor) -> str:
    if _small(exp):
        return f"expected {_nums(exp)}, got {_nums(got)}"
    d = (exp - got).abs()
    idx = int(d.reshape(-1).argmax())
    r, c = divmod(idx, exp.shape[-1])
    return (f"values differ at {int((d > 1e-4 * (1 + exp.abs())).sum())} of {exp.numel()} positions, largest at "
            f"row {r}, column {c}: expected {exp[r, c].item():.4g}, got {got[r, c].item():.4g}")


def _as_tensor(x, name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor | None, str]:
    if not isinstance(x, torch.Tensor):
        return None, f"{name} returned {type(x).__name__}, expected a torch.Tensor of shape {shape}"
    if tuple(x.shape) != tuple(shape):
        return None, f"{name} returned shape {tuple(x.shape)}, expected {tuple(shape)} (the shape of its input)"
    return x, ""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _stats(sq: torch.Tensor, tokens: int = 64) -> LayerStats:
    return LayerStats(input_sq_mean=sq.float().clone(), tokens=tokens)


def _hidden_layer(out: int, inp: int, seed: int) -> tuple[torch.Tensor, LayerStats]:
    """A random weight and activation statistics with a few outlier features (like a real LLM)."""
    g = _gen(seed)
    W = torch.randn(out, inp, generator=g)
    sq = torch.rand(inp, generator=g) * 2 + 0.1
    sq[torch.randperm(inp, generator=g)[: max(1, inp // 8)]] *= 400  # outlier features
    return W, _stats(sq)


def _proportional(exp: torch.Tensor, got: torch.Tensor) -> float | None:
    """c > 0 if got == c * exp (a rescaled score ranks weights identically), else None."""
    got = got.double()
    exp = exp.double()
    nz = exp.abs() > 1e-12
    if not nz.any() or (got[~nz].abs() > 1e-9).any():
        return None
    ratio = got[nz] / exp[nz]
    c = float(ratio.median())
    if c > 0 and torch.allclose(got, c * exp, rtol=1e-4, atol=1e-7):
        return c
    return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)


# --- assignment 1: scores and masks by hand ---------------------------------------------------
# The hand-computable example every assignment starts from: one output neuron, four inputs, and
# an input feature (the last) whose activations are large -- the paper's outlier features.
HAND_W = torch.tensor([[1.0, -2.0, 3.0, -0.5]])
HAND_NORMS = torch.tensor([4.0, 0.5, 1.0, 10.0])  # ||X_j|| per input feature
HAND_STATS = LayerStats(input_sq_mean=HAND_NORMS ** 2, tokens=4)


def _as_bool_list(x, n: int) -> tuple[list[bool] | None, str]:
    if x is None:
        return None, ""
    if isinstance(x, torch.Tensor):
        x = x.reshape(-1).tolist()
    if not isinstance(x, (list, tuple)) or len(x) != n:
        return None, f"expected a list of {n} booleans (True = pruned), got {x!r}"
    if not all(v in (0, 1, True, False) for v in x):
        return None, f"expected booleans (True = pruned) or 0/1, got {x!r}"
    return [bool(v) for v in x], ""


@_guarded("by_hand")
def check_by_hand(magnitude_mask=None, wanda_mask=None, strict: bool = False) -> CheckResult:
    """The pen-and-paper question: which 2 of the 4 weights in HAND_W does each method prune at 50%?

    Answers are lists of 4 booleans, True = pruned. The feedback gives the scores to compute, not
    the answer."""
    def case(answer, score, method, formula):
        def thunk():
            if answer is None:
                raise _NotDone(f"fill in {method}_mask (a list of 4 booleans, True = pruned)")
            got, err = _as_bool_list(answer, 4)
            if got is None:
                return False, err, ""
            exp = _masks.unstructured_mask(score, 0.5, "row")[0].tolist()
            if sum(got) != 2:
                return False, f"50% of 4 weights is 2 pruned, your answer prunes {sum(got)}", ""
            if got == exp:
                return True, "", ""
            return False, f"your answer {_bools(torch.tensor([got]))} prunes the wrong weights", \
                f"compute the 4 scores {formula} first, then prune the 2 lowest"
        return thunk

    cases = [
        ("magnitude, row of 4", case(magnitude_mask, HAND_W.abs(), "magnitude", "|W_j|")),
        ("wanda, row of 4", case(wanda_mask, HAND_W.abs() * HAND_NORMS, "wanda", "|W_j| * ||X_j||")),
    ]
    # report each answer separately: one may be done while the other is not
    res = CheckResult("by_hand")
    for name, thunk in cases:
        try:
            ok, msg, hint = thunk()
            res.cases.append(Case(name, ok, msg, hint))
        except _NotDone as e:
            res.cases.append(Case(name, False, str(e)))
    if magnitude_mask is None and wanda_mask is None:
        res.not_attempted = "fill in magnitude_mask and wanda_mask (lists of 4 booleans, True = pruned)"
    return _finish(res, strict)


def _score_case(fn, fn_name, W, stats, expected, hints=(), shape_hint=""):
    def thunk():
        Wc = W.clone()
        try:
            got = _call(fn, fn_name, Wc, stats)
        except _Raised as e:
            if shape_hint and "size of tensor" in str(e):
                return False, str(e), shape_hint
            raise
        got, err = _as_tensor(got, fn_name, tuple(W.shape))
        if got is None:
            return False, err, shape_hint
        if not torch.equal(Wc, W):
            return False, f"{fn_name} changed W in place", "compute a new tensor (W.abs() makes a copy; W.abs_() does not)"
        if got.dtype == torch.bool or not got.is_floating_point():
            return False, f"{fn_name} returned dtype {got.dtype}, expected floating-point scores", ""
        if _same(expected, got):
            return True, "", ""
        c = _proportional(expected, got)
        if c is not None:
            return True, f"your scores are {c:.4g} x the library's: same ranking, same masks", ""
        hint = next((h for alt, h in hints if _same(alt, got) or _proportional(alt, got) is not None), "")
        return False, _num_diff(expected, got), hint
    return thunk


@_guarded("magnitude_score")
def check_magnitude_score(fn, strict: bool = False) -> CheckResult:
    """fn(W, stats) -> |W|, the magnitude score (stats unused)."""
    W1 = HAND_W
    W2, s2 = _hidden_layer(8, 16, 11)
    neg = torch.tensor([[-3.0, 0.5], [2.0, -0.25]])
    hints_for = lambda W: [(W, "scores must not be negative: a weight of -3 matters as much as +3, use |W|")]  # noqa: E731
    cases = [
        ("row of 4", _score_case(fn, "magnitude_score", W1, HAND_STATS, W1.abs(), hints_for(W1))),
        ("negative weights, 2x2", _score_case(fn, "magnitude_score", neg, _stats(torch.ones(2)), neg.abs(), hints_for(neg))),
        ("random 8x16 (hidden, against wanda_core)",
         _score_case(fn, "magnitude_score", W2, s2, _scores.magnitude(W2, s2), hints_for(W2))),
    ]
    return _run("magnitude_score", "magnitude_score", fn, cases, strict)


def _wanda_hints(W: torch.Tensor, stats: LayerStats) -> list[tuple[torch.Tensor, str]]:
    n = stats.input_norm
    h = [
        (W.abs(), "your scores ignore the activations: multiply |W_ij| by the input norm ||X_j|| (stats.input_norm)"),
        (W.abs() * stats.input_sq_mean.reshape(1, -1),
         "you multiplied by the mean of x_j^2: take its square root (stats.input_norm = sqrt(stats.input_sq_mean))"),
        (W * n.reshape(1, -1), "negative weights give negative scores: use |W_ij|, not W_ij"),
    ]
    if W.shape[0] == W.shape[1]:
        h.append((W.abs() * n.reshape(-1, 1),
                  "you scaled the rows (output features) by the norms; ||X_j|| belongs to input feature j, "
                  "which is column j of W: multiply by norms.reshape(1, -1)"))
    return h


@_guarded("wanda_score")
def check_wanda_score(fn, strict: bool = False) -> CheckResult:
    """fn(W, stats) -> |W_ij| * ||X_j|| with ||X_j|| = stats.input_norm[j] (the paper's Eq. 1)."""
    W2, s2 = _hidden_layer(3, 8, 21)
    W3, s3 = _hidden_layer(6, 6, 22)
    W4, s4 = _hidden_layer(16, 32, 23)
    shape_hint = ("stats.input_norm has one entry per input feature j, i.e. per COLUMN of W (shape "
                  "(out, in)): broadcast it along the rows with .reshape(1, -1)")
    cases = [(name, _score_case(fn, "wanda_score", W, s, _scores.wanda(W, s), _wanda_hints(W, s), shape_hint))
             for name, W, s in [("row of 4, known activations", HAND_W, HAND_STATS),
                                ("3x8 with outlier features", W2, s2),
                                ("square 6x6 (hidden)", W3, s3),
                                ("random 16x32 (hidden, against wanda_core)", W4, s4)]]
    return _run("wanda_score", "wanda_score", fn, cases, strict)


def _check_mask(got, score: torch.Tensor, fn_name: str) -> tuple[torch.Tensor | None, str, str]:
    got, err = _as_tensor(got, fn_name, tuple(score.shape))
    if got is None:
        return None, err, ""
    if got.dtype != torch.bool:
        return None, f"{fn_name} returned dtype {got.dtype}, expected torch.bool (True = pruned)", \
            "a comparison such as `score < threshold` gives a bool tensor; or use mask.bool()"
    return got, "", ""


def _row_mask_hint(score, sparsity, got) -> str:
    exp = _masks.unstructured_mask(score, sparsity, "row")
    k = int(score.shape[1] * sparsity)
    per_row = got.sum(1).tolist()
    if torch.equal(got, ~exp):
        return "your mask is exactly the opposite: True must mean PRUNED, and the lowest scores are pruned"
    if torch.equal(got, _masks.unstructured_mask(-score, sparsity, "row")):
        return "you pruned the highest scores; prune the lowest (a low score means an unimportant weight)"
    if score.shape[0] > 1 and torch.equal(got, _masks.unstructured_mask(score, sparsity, "layer")):
        return ("you used one threshold for the whole matrix (comparison group 'layer'); Wanda compares the "
                "weights of each row (output neuron) separately")
    if score.shape[0] > 1 and score.shape[1] > 1 and torch.equal(got, _masks.unstructured_mask(score, sparsity, "column")):
        return "you compared within columns; Wanda compares within each row (dim=1, the input dimension)"
    if any(c != k for c in per_row):
        return (f"each row must have exactly int({score.shape[1]} * {sparsity}) = {k} pruned weights, yours have "
                f"{per_row}" + (" (round down, as int() does)" if any(c == k + 1 for c in per_row) else ""))
    return ""


@_guarded("row_mask")
def check_row_mask(fn, strict: bool = False) -> CheckResult:
    """fn(score, sparsity) -> bool mask, True for the int(in_features * sparsity) lowest scores of each row."""
    g = _gen(31)
    two_rows = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 40.0, 20.0, 30.0]])
    cases_in = [
        ("row of 4, sparsity 0.5", torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 0.5),
        ("two rows of different scale, sparsity 0.5", two_rows, 0.5),
        ("row of 4, sparsity 0.25", torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 0.25),
        ("sparsity 0 prunes nothing", torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 0.0),
        ("5 columns, sparsity 0.5 (int rounds down)", torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0]]), 0.5),
        ("random 8x16, sparsity 0.5 (hidden, against wanda_core)", torch.rand(8, 16, generator=g), 0.5),
        ("random 6x20, sparsity 0.7 (hidden, against wanda_core)", torch.rand(6, 20, generator=g), 0.7),
    ]

    def case(score, sparsity):
        def thunk():
            got = _call(fn, "row_mask", score.clone(), sparsity)
            got, err, hint = _check_mask(got, score, "row_mask")
            if got is None:
                return False, err, hint
            exp = _masks.unstructured_mask(score, sparsity, "row")
            if torch.equal(got, exp):
                return True, "", ""
            return False, _mask_diff(exp, got), _row_mask_hint(score, sparsity, got)
        return thunk

    return _run("row_mask", "row_mask", fn, [(n, case(s, p)) for n, s, p in cases_in], strict)


@_guarded("nm_mask")
def check_nm_mask(fn, strict: bool = False) -> CheckResult:
    """fn(score, n, m) -> bool mask, True for the m-n lowest scores in each block of m consecutive inputs."""
    g = _gen(41)
    cases_in = [
        ("one row, two blocks of 4, 2:4", torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 5.0, 6.0, 0.1]]), 2, 4),
        ("lowest half all in the first block, 2:4", torch.tensor([[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]]), 2, 4),
        ("1:4 keeps one per block", torch.tensor([[0.3, 0.9, 0.1, 0.2, 7.0, 5.0, 6.0, 8.0]]), 1, 4),
        ("random 8x16, 2:4 (hidden, against wanda_core)", torch.rand(8, 16, generator=g), 2, 4),
        ("random 4x16, 4:8 (hidden, against wanda_core)", torch.rand(4, 16, generator=g), 4, 8),
    ]

    def case(score, n, m):
        def thunk():
            got = _call(fn, "nm_mask", score.clone(), n, m)
            got, err, hint = _check_mask(got, score, "nm_mask")
            if got is None:
                return False, err, hint
            exp = _masks.nm_mask(score, n, m)
            if torch.equal(got, exp):
                return True, "", ""
            if torch.equal(got, ~exp):
                hint = "your mask is exactly the opposite: True must mean PRUNED (the m-n lowest of each block)"
            elif torch.equal(got, _masks.unstructured_mask(score, 1 - n / m, "row")):
                hint = (f"you pruned the lowest {1 - n / m:.0%} of the whole row; {n}:{m} must keep {n} weight{'s' if n > 1 else ''} in "
                        f"EVERY block of {m} consecutive weights")
            elif score.shape[0] % m == 0 and torch.equal(got, _masks.nm_mask(score.t().contiguous(), n, m).t()):
                hint = "your blocks run down the columns; blocks are m consecutive weights along each row"
            elif got.reshape(-1, m).sum(1).ne(m - n).any():
                hint = f"every block of {m} must have exactly {m - n} pruned (True) and {n} kept"
            else:
                hint = ""
            return False, _mask_diff(exp, got), hint
        return thunk

    return _run("nm_mask", "nm_mask", fn, [(nm, case(s, n, m)) for nm, s, n, m in cases_in], strict)


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


def _ppl_of(rec: dict) -> float:
    p = rec["results"]["ppl"]
    return p[next(iter(p))]["ppl"]


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
                              "" if ok else "pass structure=structure to base_config(...)"))
        got_sp = ((rec.get("prune") or {}).get("sparsity") or {}).get("overall", 0.0)
        ok = abs(got_sp - sparsity) < 0.01
        res.cases.append(Case(f"{structure}: sparsity", ok, f"{got_sp:.1%} of the block weights pruned" if ok else
                              f"expected {sparsity:.0%} of the block weights pruned, got {got_sp:.1%}",
                              "" if ok else f"use sparsity={sparsity} and method='wanda'"))
        lib = library.get(structure) if library else None
        if lib is not None:
            mine, ref = _ppl_of(rec), _ppl_of(lib)
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


# --- assignment 3: an open investigation --------------------------------------------------------
_CONTROLLED = ("model", "method", "structure", "sparsity", "score", "group", "weight_update", "nsamples", "seqlen",
               "seed", "dtype")


def _is_file_source(s: str) -> bool:
    return s not in ("wiki", "wikitext2", "c4")


@_guarded("design")
def check_design(configs, max_runs: int = 8, strict: bool = False) -> CheckResult:
    """The study's runs: valid, a controlled comparison of calibration sources, within the budget."""
    from .config import RunConfig

    res = CheckResult("design")
    if configs is None:
        res.not_attempted = "fill in design() (it must return a list of RunConfig)"
        res.cases = [Case("a list of RunConfig", False, res.not_attempted)]
        return _finish(res, strict)
    if not isinstance(configs, (list, tuple)) or not configs or not all(isinstance(c, RunConfig) for c in configs):
        kinds = sorted({type(c).__name__ for c in configs}) if isinstance(configs, (list, tuple)) else [type(configs).__name__]
        res.cases.append(Case("a list of RunConfig", False, f"expected a non-empty list of RunConfig, got {', '.join(kinds)}",
                              "build each with base_config(P, ...) so the profile's model and data settings carry over"))
        return _finish(res, strict)
    res.cases.append(Case("a list of RunConfig", True, f"{len(configs)} runs"))
    bad = []
    for i, c in enumerate(configs):
        try:
            c.validate()
        except ValueError as e:
            bad.append(f"run {i}: {e}")
    res.cases.append(Case("every run is valid", not bad, "; ".join(bad)))
    pruned = [c for c in configs if c.method != "dense"]
    sources = sorted({c.calib for c in pruned})
    ok = len(sources) >= 2
    res.cases.append(Case("at least two calibration sources", ok, f"{len(sources)}: {', '.join(sources)}" if ok else
                          f"the pruned runs use {len(sources)} calibration source(s) ({', '.join(sources) or 'none'})",
                          "" if ok else "vary calib=... between runs: 'wiki' and the text files made above"))
    varying = []
    for f in _CONTROLLED:
        vals = sorted({repr(getattr(c, f)) for c in pruned})
        if len(vals) > 1:
            varying.append(f"{f} ({', '.join(vals)})")
    ok = not varying
    res.cases.append(Case("only the calibration source varies", ok, "" if ok else "also varying: " + "; ".join(varying),
                          "" if ok else "a controlled comparison changes one thing; make one sweep per other factor "
                          "or keep it fixed"))
    evals = sorted({tuple(c.eval) for c in configs})
    ok = len(evals) == 1 and len(evals[0]) >= 2
    res.cases.append(Case("every run evaluated on the same 2+ text domains", ok, "" if ok else
                          f"evaluation sets per run: {', '.join(map(str, evals))}",
                          "" if ok else "give every config the same eval=(...) with at least two domains, e.g. "
                          "('wiki', <Spanish test file>)"))
    res.cases.append(Case("a dense baseline", any(c.method == "dense" for c in configs),
                          "" if any(c.method == "dense" for c in configs) else "no run with method='dense'",
                          "perplexity after pruning means little without the unpruned model's"))
    calib_files = {str(Path(c.calib).expanduser().resolve()) for c in pruned if _is_file_source(c.calib)}
    eval_files = {str(Path(e).expanduser().resolve()) for c in configs for e in c.eval if _is_file_source(e)}
    leak = sorted(calib_files & eval_files)
    res.cases.append(Case("no text used both to calibrate and to evaluate", not leak,
                          "" if not leak else f"{', '.join(leak)} is both", "" if not leak else
                          "calibrate on one file and evaluate on another (the *_calib / *_test files)"))
    missing = sorted(f for f in calib_files | eval_files if not Path(f).is_file())
    res.cases.append(Case("text files exist", not missing, "" if not missing else f"missing: {', '.join(missing)}"))
    ok = len(configs) <= max_runs
    res.cases.append(Case(f"within the budget of {max_runs} runs", ok, "" if ok else f"{len(configs)} runs",
                          "" if ok else "each pruned run takes about a minute on a laptop: drop some"))
    return _finish(res, strict)


@_guarded("figure")
def check_figure(fig, strict: bool = False) -> CheckResult:
    """A deliverable figure: a matplotlib Figure with data, axis labels and a title."""
    res = CheckResult("figure")
    if fig is None:
        res.not_attempted = "fill in make_figure (it must return a matplotlib Figure)"
        res.cases = [Case("a matplotlib figure", False, res.not_attempted)]
        return _finish(res, strict)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(fig, Axes):
        fig = fig.figure
    if not isinstance(fig, Figure):
        res.cases.append(Case("a matplotlib figure", False, f"expected a matplotlib Figure, got {type(fig).__name__}",
                              "return the figure: fig, ax = plt.subplots(); ...; return fig"))
        return _finish(res, strict)
    res.cases.append(Case("a matplotlib figure", True))
    axes = [a for a in fig.axes if a.lines or a.patches or a.collections or a.images or a.containers]
    res.cases.append(Case("shows data", bool(axes), "" if axes else "no axes with lines, bars, points or an image"))
    unlabeled = [i for i, a in enumerate(axes) if not (a.get_xlabel() or a.get_ylabel())]
    missing_y = [i for i, a in enumerate(axes) if not a.get_ylabel() and not a.images]
    res.cases.append(Case("axes are labelled", bool(axes) and not unlabeled and not missing_y,
                          "" if axes and not unlabeled and not missing_y else
                          f"axes {unlabeled or missing_y} lack a label (the y axis: what is measured, with its unit)",
                          "ax.set_ylabel('perplexity on ...'), ax.set_xlabel(...)"))
    title = (fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else "") or any(a.get_title() for a in fig.axes)
    res.cases.append(Case("has a title", bool(title), "" if title else "no title", "ax.set_title(...) or fig.suptitle(...)"))
    return _finish(res, strict)


_PLACEHOLDER = re.compile(r"YOUR ANSWER HERE|YOUR TEXT HERE|TODO", re.I)


@_guarded("writeup")
def check_writeup(text, words: int = 200, strict: bool = False) -> CheckResult:
    """The written findings: about `words` words (within 25%), citing numbers. Its content is graded
    by the instructor with the rubric; this checks only the form."""
    res = CheckResult("writeup")
    if text is None or not str(text).strip() or _PLACEHOLDER.search(str(text) or ""):
        res.not_attempted = f"write your findings (about {words} words) into `findings`"
        res.cases = [Case("written", False, res.not_attempted)]
        return _finish(res, strict)
    n = len(re.findall(r"\b[\w'’.-]+\b", str(text)))
    lo, hi = int(words * 0.75), int(words * 1.25)
    res.cases.append(Case("written", True))
    res.cases.append(Case(f"length {lo}-{hi} words", lo <= n <= hi, f"{n} words",
                          "" if lo <= n <= hi else ("say more: what you compared, what you found, why"
                                                    if n < lo else "cut: keep the claim, the evidence, the explanation")))
    nums = re.findall(r"\d+(?:\.\d+)?", str(text))
    res.cases.append(Case("cites numbers from your results", len(nums) >= 2, f"{len(nums)} numbers",
                          "" if len(nums) >= 2 else "support the claims with the perplexities you measured"))
    return _finish(res, strict)
