"""The book's presentation: one module per experiment module (wanda_core.study.experiments), each
holding that experiment's figures, sentences and derived tables; `present` (labels, table style,
captions) and `plotting` (the figures' shared style) under them; `bookbuild` runs the chapters.

    from wanda_core import report
    report.tables.vs_paper(ours, cmp, "±")      # a module is imported on first use
"""
import importlib

PRESENTATION = ("outliers", "tables", "zeroshot", "sweeps", "ablations", "timing", "speedup", "claims", "ladder",
                "successors")


def __getattr__(name):
    if name in PRESENTATION + ("present", "plotting", "bookbuild"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
