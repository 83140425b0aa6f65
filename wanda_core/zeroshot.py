"""Zero-shot accuracy through EleutherAI's lm-eval 0.4.x (the paper's Table 2), on the pruned model
in memory (`HFLM(pretrained=model, tokenizer=tok)`). Task names, sources and checks live in
wanda_core.tasks; the embedded (offline) copies of the real data sets in wanda_core.taskdata.

    from wanda_core.zeroshot import evaluate_tasks, PAPER_TASKS
    r = evaluate_tasks(model, tok, PAPER_TASKS, limit=200)      # embedded real data, offline
    r["tasks"]["boolq"]["acc"], r["tasks"]["boolq"]["acc_stderr"], r["tasks"]["boolq"]["n"], r["mean_acc"]

In a run config: `RunConfig(tasks=(...), task_source="embedded"|"hub", task_dir=..., task_limit=...)`;
the runner calls `evaluate_tasks` and stores its dict as `record["results"]["zeroshot"]`, each task
saying where its data came from. `acc_stderr` is lm-eval's sample standard error of the mean
accuracy over the n scored examples. With `limit`, lm-eval scores the FIRST n documents of the
split (not a random sample): every run on a task sees the same examples, so methods are compared
on paired data.

`evaluate_tasks("oracle", None, tasks)` runs `OracleLM`, a model that knows the gold answers from
the raw data: it must score 1.0 (and 0.0 inverted), which tests the prompt/label/aggregation path.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import time
import warnings
from pathlib import Path

from . import taskdata
from .tasks import (CHANCE, EXTRA_TASKS, KNOWN_TASKS, OFFLINE_TASKS, PAPER_TASKS, PROXY_FOR, _SPECS,
                    _lm_eval_tasks_dir, build_offline_suite, check_task_file, check_tasks, offline_task_dir,
                    task_sources, task_yaml)

log = logging.getLogger(__name__)
_FEWSHOT = {"mmlu": 5}


# --- lm-eval, imported and indexed once per process -------------------------------------------
@functools.lru_cache(maxsize=1)
def _lm_eval():
    """lm-eval's modules and a TaskManager over only what we use (indexing all ~15k tasks takes ~10 s)."""
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)  # its per-task warnings are a wall of text
    import datasets
    import lm_eval
    import lm_eval.evaluator
    from lm_eval.api.model import LM
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    datasets.disable_progress_bars()
    tm = TaskManager(include_defaults=False, include_path=[str(_lm_eval_tasks_dir() / "mmlu" / "default")])
    version = getattr(lm_eval, "__version__", None) or _dist_version("lm_eval")
    return {"evaluator": lm_eval.evaluator, "LM": LM, "HFLM": HFLM, "tm": tm, "version": version}


def _dist_version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def _load_tasks(tasks: tuple[str, ...], task_dir: Path | None, source: str = "embedded") -> dict:
    """lm-eval's TaskDict for `tasks`, few-shot counts set, splits checked."""
    L = _lm_eval()
    specs = []
    for t, where in task_sources(tasks, task_dir, source).items():
        if where == "proxy":
            specs.append(str(offline_task_dir() / f"{t}.yaml"))
        elif t == "mmlu":
            specs.append(t)  # a group, from the TaskManager's index (hub only)
        else:
            specs.append(str(task_yaml(t, where, task_dir)))
    loaded = L["tm"].load(specs)
    for name, task in loaded["tasks"].items():
        base = "mmlu" if name.startswith("mmlu") else name
        task.set_config(key="num_fewshot", value=_FEWSHOT.get(base, 0))
        task.set_fewshot_seed(seed=1234)  # lm-eval's default; mmlu's sampler is first_n anyway
        want = _SPECS[base][1] if base in _SPECS else "test"
        used = task.config.test_split or task.config.validation_split
        if used != want:  # a newer lm-eval changed a default we rely on: say so, never drift silently
            raise RuntimeError(f"lm-eval evaluates {name} on {used!r}, the paper uses {want!r}")
    return loaded


@contextlib.contextmanager
def _quiet(progress: bool):
    """Python warnings off and, unless progress, lm-eval's tqdm bars too (it has no switch for
    the per-task request-building bars; we swap its module-level tqdm and put it back)."""
    import lm_eval.api.model
    import lm_eval.api.task
    import lm_eval.models.huggingface
    from tqdm import tqdm

    def off(*a, **k):
        k["disable"] = True
        return tqdm(*a, **k)

    mods = (lm_eval.api.model, lm_eval.api.task, lm_eval.models.huggingface)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes from lm-eval / datasets internals
        if not progress:
            for m in mods:
                m.tqdm = off
        try:
            yield
        finally:
            for m in mods:
                m.tqdm = tqdm


# --- the oracle -------------------------------------------------------------------------------
def _gold_test(task: str, doc: dict, ctx: str, cont: str) -> bool:
    """Whether (ctx, cont) is the gold answer, decided from the RAW data fields (not lm-eval's
    templates), so a label or choice mix-up in the prompt path shows up as accuracy < 1."""
    c = cont.strip()
    if task == "boolq":
        return c == ("yes" if doc["label"] == 1 else "no")
    if task == "rte":
        return c == ("True" if doc["label"] == 0 else "False")
    if task == "hellaswag":
        gold = doc["endings"][int(doc["label"])]
        return c == re.sub(r"\[.*?\]", "", gold.strip().replace(" [title]", ". ")).replace("  ", " ").strip()
    if task == "winogrande":
        blank = doc["sentence"].index("_")
        return ctx.endswith(doc["sentence"][:blank] + doc["option" + str(doc["answer"])])
    if task in ("arc_easy", "arc_challenge", "openbookqa"):
        return c == doc["choices"]["text"][doc["choices"]["label"].index(doc["answerKey"].strip())]
    if task.startswith("mmlu"):
        return c == "ABCD"[doc["answer"]]
    if task == "lambada_openai":
        return cont == " " + doc["text"].split(" ")[-1]
    if task == "wiki_lastword":
        return cont == doc["target"]
    if task == "wiki_nextsent":
        return c == doc["choices"][doc["label"]].strip()
    raise ValueError(f"no oracle for task {task!r}")


def make_oracle(inverse: bool = False):
    """An lm-eval LM that gives loglikelihood 0 to the gold continuation and -100 to the others
    (inverse=True: the opposite, so it must score 0 on multiple-choice tasks)."""
    LM = _lm_eval()["LM"]

    class OracleLM(LM):
        def loglikelihood(self, requests, disable_tqdm=False):
            out = []
            for r in requests:
                gold = _gold_test(r.task_name, r.doc, *r.args) != inverse
                out.append((0.0 if gold else -100.0, gold))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError("the oracle scores answer choices only")

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError("the oracle scores answer choices only")

    return OracleLM()


# --- evaluation -------------------------------------------------------------------------------
def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _provenance(task: str, where: str, task_dir: Path | None) -> str:
    if where == "embedded":
        return taskdata.provenance(task)
    if where == "task_dir":
        return f"task_dir: {task_dir / (task + '.jsonl')}"
    if where == "proxy":
        return f"proxy built from the embedded Wikipedia test split ({PROXY_FOR[task]})"
    return f"hub: {_SPECS[task][2][0]}" + (f" ({_SPECS[task][2][1]})" if _SPECS[task][2][1] else "")


def evaluate_tasks(model, tokenizer, tasks, task_dir: str | os.PathLike | None = None, limit: int | None = None,
                   batch_size: int = 8, add_bos: bool = False, progress: bool = False,
                   source: str = "embedded") -> dict:
    """Accuracy of `model` on `tasks` through lm-eval. `model` is a HF causal LM (evaluated in memory),
    an lm-eval `LM`, or "oracle" (see make_oracle). Returns
    {"tasks": {name: {"acc", "acc_stderr", "n", "proxy"}}, "mean_acc", "mean_over", "lm_eval_version",
    "seconds", "limit", "task_dir"}; mean_acc is the unweighted mean over the tasks other than mmlu.
    progress=True shows lm-eval's progress bars (off by default: notebooks stay readable)."""
    t0 = time.time()
    tasks = check_tasks(tasks, task_dir, source)
    if not tasks:
        raise ValueError(f"no zero-shot tasks given; valid: {', '.join(KNOWN_TASKS)}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"task limit must be a whole number >= 1 or None (all), got {limit!r}")
    tdir = Path(task_dir).expanduser().resolve() if task_dir is not None else None
    L = _lm_eval()
    if isinstance(model, str):
        if model != "oracle":
            raise ValueError(f"model must be a loaded causal LM, an lm-eval LM or 'oracle', got {model!r}")
        lm = make_oracle()
    elif isinstance(model, L["LM"]):
        lm = model
    else:
        # HFLM takes the model's own device; add_bos_token=False as the official code (add_special_tokens=False)
        lm = L["HFLM"](pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos)
    log.info("zero-shot: %s on %s (limit %s, %s)", type(lm).__name__, ", ".join(tasks), limit,
             f"files in {tdir}" if tdir else f"source {source}")
    with _quiet(progress):
        # evaluate(), not simple_evaluate(): the latter reseeds the caller's global RNGs and shells
        # out to git for a commit hash of the current directory
        res = L["evaluator"].evaluate(lm=lm, task_dict=_load_tasks(tasks, tdir, source), limit=limit,
                                      log_samples=False, bootstrap_iters=1000)
    out: dict[str, dict] = {}
    where = task_sources(tasks, tdir, source)
    for t in tasks:
        r = res["results"][t]
        n = sum(v["effective"] for k, v in res["n-samples"].items() if k == t or (t == "mmlu" and k.startswith("mmlu_")))
        out[t] = {"acc": float(r["acc,none"]), "acc_stderr": _num(r.get("acc_stderr,none")), "n": int(n),
                  "proxy": t in OFFLINE_TASKS, "chance": CHANCE[t], "source": _provenance(t, where[t], tdir)}
    over = [t for t in tasks if t not in EXTRA_TASKS] or list(tasks)
    return {"tasks": out, "mean_acc": sum(out[t]["acc"] for t in over) / len(over), "mean_over": over,
            "lm_eval_version": L["version"], "seconds": round(time.time() - t0, 2), "limit": limit,
            "task_dir": str(tdir) if tdir else None, "task_source": source}


__all__ = ["PAPER_TASKS", "OFFLINE_TASKS", "EXTRA_TASKS", "KNOWN_TASKS", "PROXY_FOR", "CHANCE", "check_tasks",
           "check_task_file", "evaluate_tasks", "build_offline_suite", "offline_task_dir", "make_oracle"]
