"""wanda_core: layer-by-layer pruning of LLMs (magnitude, Wanda, SparseGPT and the paper's
ablations), evaluation and run records, for the Wanda reproduction book.

    from wanda_core import RunConfig, run
    record = run(RunConfig(method="wanda", sparsity=0.5))
    record["results"]["ppl"]

Command line: `python -m wanda_core --help`.
"""
from .hub import configure_env as _configure_env

_configure_env()  # quiet HF defaults; no network here (the hub is probed when a hub path is first used)

__version__ = "0.1.0"


def __getattr__(name):  # lazy, so `import wanda_core` stays fast and light
    if name in ("RunConfig",):
        from .config import RunConfig

        return RunConfig
    if name in ("run", "run_many"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
