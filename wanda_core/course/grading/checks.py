"""The shared checking machinery of the course's grading: verdicts, expected versus got, "not
attempted yet", and strict mode (one short AssertionError). The checks of each assignment
(a1.py, a2.py, a3.py) are built on it; the package docstring (wanda_core/course/grading/__init__.py)
says how notebooks use them.
"""
from __future__ import annotations

import functools
import json
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from wanda_core.prune.scores import LayerStats

_PKG = str(Path(__file__).resolve().parents[2]) + os.sep  # wanda_core/: not the student's code
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
