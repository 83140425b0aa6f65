"""Zero-shot accuracy through EleutherAI's lm-eval 0.4.x (the paper's Table 2), on the pruned model
in memory (`HFLM(pretrained=model, tokenizer=tok)`). Task names, sources and checks live in
wanda_core.evaluation.tasks; the embedded (offline) copies of the real data sets in wanda_core.evaluation.taskdata.

    from wanda_core.evaluation.tasks import PAPER_TASKS
    from wanda_core.evaluation.zeroshot import evaluate_tasks
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

from wanda_core.evaluation import taskdata
from wanda_core.evaluation.lmeval_yaml import lm_eval_tasks_dir, task_yaml
from wanda_core.evaluation.proxy_tasks import offline_task_dir
from wanda_core.evaluation.tasks import (CHANCE, EXTRA_TASKS, KNOWN_TASKS, OFFLINE_TASKS, PROXY_FOR, TASK_SPECS,
                                         check_tasks, task_sources)

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
    tm = TaskManager(include_defaults=False, include_path=[str(lm_eval_tasks_dir() / "mmlu" / "default")])
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
        want = TASK_SPECS[base][1] if base in TASK_SPECS else "test"
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


# --- the model, scored only where lm-eval reads it ---------------------------------------------
# Padded tokens per forward when scoring: one 2-core CPU forward of SmolLM2 costs ~1.3 ms a token at
# 350-900 tokens, 1.6-1.9 ms in batches of one row or of ~100 tokens (fixed cost per call) and 1.5 ms
# above ~1,400 (cache); HFLM's 8 rows a batch gave 8 x 14-token rows on OpenBookQA and 8 rows padded
# to BoolQ's longest passage. A GPU wants far more.
TOKENS_PER_BATCH = {"cpu": 1024, "cuda": 16384}


@functools.lru_cache(maxsize=1)
def _scored_lm_class():
    """HFLM whose loglikelihood computes only what lm-eval reads, in batches sized by tokens.

    lm-eval's HFLM (0.4.x) applies the LM head and a log-softmax over the whole vocabulary at every
    position of every padded row, then keeps the continuation's few: on SmolLM2 the head is a fifth
    of the forward's flops, on Gemma-3 (vocabulary 262k) more than half, and its (batch, length,
    vocabulary) float32 logits are the whole run's peak memory. Here a pre-hook on the output layer
    hands it only the hidden states at the scored positions, so whatever the model does after the
    head (Gemma's soft-capping) still applies. Rows are batched up to TOKENS_PER_BATCH padded tokens
    (longest first, as HFLM sorts them) instead of a fixed number of rows. Everything else is HFLM's:
    its tokenisation (`_encode_pair`), left truncation to max_length, right padding with no attention
    mask, one forward for the one-token continuations of one input, the sum of log-probs and the
    greedy check. Loglikelihoods equal HFLM's to float rounding, on four architectures
    (tests/test_zeroshot.py); on the default profile's eight tasks every accuracy was identical.
    (Running a multiple-choice context once with the KV cache was measured and dropped: these
    contexts are short, and the batch-of-one forwards it needs cost more than the tokens it saves.)"""
    import lm_eval.models.huggingface as hf  # its tqdm, looked up at call time: _quiet switches it off
    import torch
    import torch.nn.functional as F

    HFLM = _lm_eval()["HFLM"]

    from wanda_core.prune.finite import check

    class ScoredPositionsLM(HFLM):
        def _scored(self, ids: torch.Tensor, lengths: list[int], scored: list[int]) -> list:
            """Log-probs (scored[r], vocabulary) at the last scored[r] of the lengths[r] real positions
            of each right-padded row of ids; the head sees only those positions."""
            r_idx = [r for r, n in enumerate(scored) for _ in range(n)]
            p_idx = [p for ln, n in zip(lengths, scored) for p in range(ln - n, ln)]
            where = (torch.tensor(r_idx), torch.tensor(p_idx))
            hook = self.model.get_output_embeddings().register_forward_pre_hook(
                lambda m, a: (a[0][where].unsqueeze(0),) + a[1:])
            try:
                logits = self.model(ids.to(self.device), use_cache=False).logits[0]
            finally:
                hook.remove()
            check(logits, "accuracy")  # NaN log-probs would still give an argmax, and an accuracy
            return list(F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype).split(scored))

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
            if self.backend != "causal":
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            inps, rows = [], {}  # rows: one per distinct input, scored over its longest continuation
            for _, ctx, cont in requests:
                if not ctx or not cont or len(cont) > self.max_length:
                    raise ValueError(f"cannot score a request with {len(ctx)} context and {len(cont)} "
                                     f"continuation tokens (max_length {self.max_length})")
                inp = tuple((ctx + cont)[-(self.max_length + 1):][:-1])
                inps.append(inp)
                rows[inp] = max(rows.get(inp, 0), len(cont))
            order = sorted(rows, key=lambda r: (-len(r), r))  # longest first: padding stays small
            budget = TOKENS_PER_BATCH.get(self.device.type, TOKENS_PER_BATCH["cpu"])
            logprobs = {}
            with torch.no_grad(), hf.tqdm(total=len(order), disable=disable_tqdm or self.rank != 0,
                                          desc="Running loglikelihood requests") as bar:
                i = 0
                while i < len(order):
                    n = max(1, budget // len(order[i]))  # rows padded to the first (longest) one
                    batch = order[i : i + n]
                    ids = torch.zeros(len(batch), len(batch[0]), dtype=torch.long)
                    for r, row in enumerate(batch):
                        ids[r, : len(row)] = torch.tensor(row)
                    logprobs.update(zip(batch, self._scored(ids, [len(r) for r in batch], [rows[r] for r in batch])))
                    bar.update(len(batch))
                    i += n
            out = []
            for (key, _, cont), inp in zip(requests, inps):
                lp = logprobs[inp][-len(cont):]
                toks = torch.tensor(cont, device=lp.device)
                answer = (float(lp.gather(1, toks[:, None]).sum()), bool((lp.argmax(-1) == toks).all()))
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, answer)
                out.append(answer)
            return out

    return ScoredPositionsLM


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
    return f"hub: {TASK_SPECS[task][2][0]}" + (f" ({TASK_SPECS[task][2][1]})" if TASK_SPECS[task][2][1] else "")


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
        # HFLM takes the model's own device; add_bos_token=False as the official code (add_special_tokens=False).
        # batch_size reaches only HFLM's own paths: ScoredPositionsLM batches by TOKENS_PER_BATCH
        lm = _scored_lm_class()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos)
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
        if not math.isfinite(float(r["acc,none"])):
            from wanda_core.prune.finite import NonFinite

            raise NonFinite({"stage": "accuracy", "task": t, "value": str(float(r["acc,none"]))})
        out[t] = {"acc": float(r["acc,none"]), "acc_stderr": _num(r.get("acc_stderr,none")), "n": int(n),
                  "proxy": t in OFFLINE_TASKS, "chance": CHANCE[t], "source": _provenance(t, where[t], tdir)}
    over = [t for t in tasks if t not in EXTRA_TASKS] or list(tasks)
    return {"tasks": out, "mean_acc": sum(out[t]["acc"] for t in over) / len(over), "mean_over": over,
            "lm_eval_version": L["version"], "seconds": round(time.time() - t0, 2), "limit": limit,
            "task_dir": str(tdir) if tdir else None, "task_source": source}
