"""Transitional: the names chapter 09 still imports from the old `wanda_core.report_extra`, now in
wanda_core.present, wanda_core.figures and wanda_core.experiments. Removed once chapter 09 imports
those directly; do not use in new code."""
from .experiments.claims import ratio  # noqa: F401
from .experiments.common import device, frame
from .experiments.costs import ARCH, op_counts  # noqa: F401
from .figures import positive  # noqa: F401
from .present import caption


def get(cfg, runs_dir, need: str = "ppl"):
    """The record of `cfg` (run if missing): wanda_core.runner.run."""
    from .runner import run

    return run(cfg, runs_dir, progress=False)


def device_label(rec) -> str:
    return device(rec["provenance"]["device"])


def context(records, sparsity: str | None = None) -> str:
    return caption(frame(list(records)), sparsity)
