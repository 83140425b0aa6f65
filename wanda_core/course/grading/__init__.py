"""Grading for the course assignments: checks with immediate, specific feedback.

The assignments are course/solutions/*.md; students get notebooks generated from them
(wanda_core.course.coursekit). checks.py holds the shared machinery, a1.py, a2.py and a3.py the checks.

Each check runs a student's function (or answer) on named cases, prints one short line per case,
and returns a `CheckResult`. A check never raises in a notebook: an unfilled starter prints

    wanda_score: not attempted yet -- NotImplementedError: fill in wanda_score first (...)

and a wrong answer prints which case failed, expected versus got, and a hint where the mistake is a
common one. With `strict=True` (the tests) a failed check raises one concise AssertionError.

    from wanda_core.course import grading
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
from wanda_core.course.grading.checks import Case, CheckResult, attempt, implemented, reset, results, summary
from wanda_core.course.grading.a1 import HAND_STATS, HAND_W, check_by_hand, check_magnitude_score, check_nm_mask, check_row_mask, check_wanda_score
from wanda_core.course.grading.a2 import check_engine_score, check_outlier_features, check_prune_records, check_pruned_fraction
from wanda_core.course.grading.a3 import check_design, check_figure, check_writeup

__all__ = [
    "Case", "CheckResult", "summary", "reset", "results", "implemented", "attempt",
    "check_by_hand", "check_magnitude_score", "check_wanda_score", "check_row_mask", "check_nm_mask",
    "check_engine_score", "check_prune_records", "check_outlier_features", "check_pruned_fraction",
    "check_design", "check_figure", "check_writeup",
]
