"""Assignment 1 (scores and masks by hand): check_by_hand, check_magnitude_score,
check_wanda_score, check_row_mask, check_nm_mask.

    from wanda_core.course import grading
    grading.check_row_mask(row_mask)      # prints one verdict per case, returns a CheckResult
"""
from __future__ import annotations

import torch

from wanda_core.prune import masks as _masks
from wanda_core.prune import scores as _scores
from wanda_core.prune.scores import LayerStats
from wanda_core.course.grading.checks import (CheckResult, Case, _as_tensor, _bools, _call, _finish, _gen, _guarded, _hidden_layer, _mask_diff,
                     _NotDone, _num_diff, _proportional, _Raised, _run, _same, _stats)

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
