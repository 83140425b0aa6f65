"""wanda_core: layer-by-layer pruning of LLMs (magnitude, Wanda, SparseGPT and the paper's
ablations), evaluation and run records, for the Wanda reproduction book.

    from wanda_core import RunConfig, run
    record = run(RunConfig(method="wanda", sparsity=0.5))
    record["results"]["ppl"]

Command line: `python -m wanda_core --help`.

The package in layers, bottom first; a module imports only from its own layer or those below
(tests/test_layers.py checks it, and that no imports form a cycle):

    paths        where things live: the checkout, the cache, files inside installed packages
    prune        scores, masks, SparseGPT, OWL's allocation, DSnoT's refinement, the engine
    models       loading models (embedded GGUF chunks, tiny, local, hub), text data, activations
    evaluation   perplexity, the zero-shot task registry, proxy tasks, lm-eval
    runs         RunConfig, run records, the runner, memory measurement, the command line
    gpu          timing on a GPU: 2:4 speed-ups, pruning time at LLaMA scale
    course       the course's kit and its assignment checks
    study        profiles, the paper's numbers, the book's experiments
    report       the book's figures, sentences and tables, one module per experiment; the book build
    cluster      every run the book needs, planned, and swept over a process pool, Ray or Slurm
    cli          the command line, `python -m wanda_core` (its flags derived from the configs)
"""
from wanda_core.models.hub import configure_env as _configure_env

_configure_env()  # quiet HF defaults; no network here (the hub is probed when a hub path is first used)

__version__ = "0.1.0"

LAYERS = ("paths", "prune", "models", "evaluation", "runs", "gpu", "course", "study", "report", "cluster", "cli")


def __getattr__(name):  # lazy, so `import wanda_core` stays fast and light
    if name in ("RunConfig",):
        from wanda_core.runs.config import RunConfig

        return RunConfig
    if name in ("run", "run_many"):
        from wanda_core.runs import runner
        return getattr(runner, name)
    raise AttributeError(name)
