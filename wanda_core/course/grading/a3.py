"""Assignment 3 (an open investigation): check_design, check_figure, check_writeup. They check
form only (a controlled design, a labelled figure, a text of the right length citing numbers);
the content is graded with the notebook's rubric.

    from wanda_core.course import grading
    grading.check_design(configs, max_runs=8)
"""
from __future__ import annotations

import re
from pathlib import Path

from wanda_core.course.grading.checks import CheckResult, Case, _finish, _guarded

# --- assignment 3: an open investigation --------------------------------------------------------
_CONTROLLED = ("model", "method", "structure", "sparsity", "score", "group", "weight_update", "nsamples", "seqlen",
               "seed", "dtype")


def _is_file_source(s: str) -> bool:
    return s not in ("wiki", "wikitext2", "c4")


@_guarded("design")
def check_design(configs, max_runs: int = 8, strict: bool = False) -> CheckResult:
    """The study's runs: valid, a controlled comparison of calibration sources, within the budget."""
    from wanda_core.runs.config import RunConfig

    res = CheckResult("design")
    if configs is None:
        res.not_attempted = "fill in design() (it must return a list of RunConfig)"
        res.cases = [Case("a list of RunConfig", False, res.not_attempted)]
        return _finish(res, strict)
    if not isinstance(configs, (list, tuple)) or not configs or not all(isinstance(c, RunConfig) for c in configs):
        kinds = sorted({type(c).__name__ for c in configs}) if isinstance(configs, (list, tuple)) else [type(configs).__name__]
        res.cases.append(Case("a list of RunConfig", False, f"expected a non-empty list of RunConfig, got {', '.join(kinds)}",
                              "build each with P.config(...) so the profile's model and data settings carry over"))
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
