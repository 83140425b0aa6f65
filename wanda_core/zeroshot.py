"""Zero-shot accuracy through EleutherAI's lm-eval 0.4.x (the paper's Table 2), on the pruned model
in memory (`HFLM(pretrained=model, tokenizer=tok)`), with an offline proxy suite for the default.

    from wanda_core.zeroshot import evaluate_tasks, check_tasks, PAPER_TASKS, OFFLINE_TASKS
    check_tasks(PAPER_TASKS, task_dir="tasks/")        # fails in seconds, before any pruning
    r = evaluate_tasks(model, tok, OFFLINE_TASKS, limit=100)
    r["tasks"]["wiki_nextsent"]["acc"], r["mean_acc"]

In a run config: `RunConfig(tasks=(...), task_dir=..., task_limit=...)`; the runner calls
`evaluate_tasks` and stores its dict as `record["results"]["zeroshot"]`.

Tasks
- PAPER_TASKS: boolq, rte, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa, lm-eval's
  own task configs, 0-shot, metric `acc` (not `acc_norm`), on the paper's splits: ARC and
  OpenBookQA on test, the rest on validation (lm-eval's defaults too; we pin them so a change in
  lm-eval cannot move them silently). Table 2 is the mean of the seven. The paper used an old
  lm-eval fork; prompts in 0.4.x are close but not identical, so absolute numbers can differ.
- `mmlu`: lm-eval's MMLU group, 5-shot (first five `dev` questions of each subject), reported
  but left out of `mean_acc` (it is not one of Table 2's zero-shot tasks). Hub or HF cache only.
- OFFLINE_TASKS: PROXIES built from the embedded Wikipedia TEST split (never calibration text;
  examples whose text occurs verbatim in the calibration split are dropped), deterministic:
    wiki_lastword  PROXY for LAMBADA-style last-word prediction. Context = the lead section cut
                   after a sentence whose final word already occurred earlier in the passage (a
                   cheap stand-in for LAMBADA's "needs the wider context" filter), minus that
                   word and its full stop; target = " word". acc = every target token is the
                   model's argmax (lm-eval's `loglikelihood` acc, as lambada_openai).
    wiki_nextsent  PROXY for HellaSwag-style continuation choice. Context = an article's first
                   sentence; choices = its true second sentence and the second sentences of 3
                   other articles of similar length (seeded), in seeded order. acc = the choice
                   with the highest summed loglikelihood (the paper's `acc`).
  OFFLINE_SIZE: 300 + 200 examples (~59k tokens). SmolLM2-135M dense needs ~4 CPU-minutes for
  both (243 s of CPU time measured on one core), about 2-3 minutes on 2 free cores; it scores
  ~69% and ~70% (chance: ~0% and 25%). 50% magnitude pruning drops it to ~6% and ~34%.

Local task directory (`task_dir`, relative paths work): the paper's tasks read from
`<task_dir>/<task>.jsonl`, one JSON object per line, in each dataset's own hub schema and split:
    boolq.jsonl          passage, question, label (0 = no, 1 = yes)            SuperGLUE validation
    rte.jsonl            sentence1, sentence2, label (0 = entailment, 1 = not)   GLUE validation
    hellaswag.jsonl      activity_label, ctx_a, ctx_b, endings (4), label ("0".."3")   validation
    winogrande.jsonl     sentence (with one "_"), option1, option2, answer ("1"/"2")   xl validation
    arc_easy.jsonl       question, choices {text: [...], label: [...]}, answerKey       test
    arc_challenge.jsonl  same as arc_easy                                               test
    openbookqa.jsonl     question_stem, choices {text, label}, answerKey                test
Every requested paper task must have its file there (checked up front, every line). `mmlu` and
the offline proxies never read task_dir.

Without task_dir the paper's tasks come from the Hugging Face hub (or its local cache); offline
and uncached, `check_tasks` raises `HubUnavailable` at once instead of letting datasets retry.

lm-eval tasks are loaded from YAML files we generate: the proxies (YAML + JSONL) and the hub
wrappers under $WANDA_CACHE/zeroshot/ (`lm_eval --include_path <dir>/offline-...` runs the proxies
on lm-eval's own CLI too), the task_dir wrappers in a temporary directory per process. Each wrapper
`include`s lm-eval's own YAML and overrides only the split (and, local, the data file).
`evaluate_tasks("oracle", None, tasks)` runs `OracleLM`, a model that knows the gold answers
from the raw data: it must score 1.0, which tests the prompt/label/aggregation path.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from . import hub
from .models import cache_dir

log = logging.getLogger(__name__)

PAPER_TASKS = ("boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
OFFLINE_TASKS = ("wiki_lastword", "wiki_nextsent")
EXTRA_TASKS = ("mmlu",)
KNOWN_TASKS = PAPER_TASKS + EXTRA_TASKS + OFFLINE_TASKS
PROXY_FOR = {"wiki_lastword": "LAMBADA-style last word", "wiki_nextsent": "HellaSwag-style continuation"}
# ~59k tokens (18k + 41k: wiki_nextsent scores 4 choices): ~4 CPU-minutes for SmolLM2-135M
OFFLINE_SIZE = {"wiki_lastword": 300, "wiki_nextsent": 200}
OFFLINE_SEED = 0
_OFFLINE_VERSION = 3  # bump when the construction changes, so cached JSONL is rebuilt

# name: (lm-eval YAML under lm_eval/tasks, the paper's split, hub dataset (path, config), required fields)
_SPECS: dict[str, tuple[str, str, tuple[str, str | None], tuple[str, ...]]] = {
    "boolq": ("super_glue/boolq/default.yaml", "validation", ("aps/super_glue", "boolq"), ("passage", "question", "label")),
    "rte": ("glue/rte/default.yaml", "validation", ("nyu-mll/glue", "rte"), ("sentence1", "sentence2", "label")),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation", ("Rowan/hellaswag", None),
                  ("activity_label", "ctx_a", "ctx_b", "endings", "label")),
    "winogrande": ("winogrande/default.yaml", "validation", ("allenai/winogrande", "winogrande_xl"),
                   ("sentence", "option1", "option2", "answer")),
    "arc_easy": ("arc/arc_easy.yaml", "test", ("allenai/ai2_arc", "ARC-Easy"),
                 ("question", "choices.text", "choices.label", "answerKey")),
    "arc_challenge": ("arc/arc_challenge.yaml", "test", ("allenai/ai2_arc", "ARC-Challenge"),
                      ("question", "choices.text", "choices.label", "answerKey")),
    "openbookqa": ("openbookqa/openbookqa.yaml", "test", ("allenai/openbookqa", "main"),
                   ("question_stem", "choices.text", "choices.label", "answerKey")),
    "mmlu": ("mmlu/default/_mmlu.yaml", "test", ("cais/mmlu", None), ()),
}
_FEWSHOT = {"mmlu": 5}


# --- validation -------------------------------------------------------------------------------
def _norm_tasks(tasks) -> tuple[str, ...]:
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks or ())
    for t in tasks:
        if t not in KNOWN_TASKS:
            raise ValueError(f"unknown zero-shot task {t!r}; valid: {', '.join(KNOWN_TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"zero-shot task listed twice in {list(tasks)}")
    return tasks


def _get(doc: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(doc, dict) or key not in doc:
            raise KeyError(dotted)
        doc = doc[key]
    return doc


def _value_problem(task: str, d: dict) -> str | None:
    """Values that would otherwise fail deep inside lm-eval with an unhelpful traceback."""
    if task in ("boolq", "rte") and d["label"] not in (0, 1):
        return f"label must be 0 or 1, got {d['label']!r}"
    if task == "winogrande":
        if "_" not in str(d["sentence"]):
            return "sentence has no '_' blank"
        if d["answer"] not in ("1", "2"):  # strings, as in the hub data (lm-eval maps them by key)
            return f"answer must be the string '1' or '2', got {d['answer']!r}"
    if task == "hellaswag" and (not isinstance(d["endings"], list) or str(d["label"]) not in
                                [str(i) for i in range(len(d["endings"]))]):
        return f"label {d['label']!r} is not an index into endings"
    if task.startswith(("arc", "openbookqa")):
        labels, texts = d["choices"]["label"], d["choices"]["text"]
        if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts):
            return "choices.text and choices.label must be lists of equal length"
        key = d["answerKey"].lstrip() if task == "openbookqa" and isinstance(d["answerKey"], str) else d["answerKey"]
        if key not in labels:  # lm-eval looks it up with list.index (after lstrip for OpenBookQA)
            return f"answerKey {d['answerKey']!r} is not one of choices.label {labels}"
    return None


def check_task_file(task: str, path: Path) -> int:
    """Check a local task file line by line; return its number of examples."""
    if not path.is_file():
        raise ValueError(f"zero-shot task {task!r}: file {path} not found (expected {path.name} with "
                         f"fields {', '.join(_SPECS[task][3])}; see wanda_core.zeroshot's docstring)")
    n = 0
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(doc, dict):
                raise ValueError(f"{path}:{i}: each line must be a JSON object, got {type(doc).__name__}")
            for field in _SPECS[task][3]:
                try:
                    _get(doc, field)
                except KeyError:
                    raise ValueError(f"{path}:{i}: missing field {field!r} (task {task} needs "
                                     f"{', '.join(_SPECS[task][3])})") from None
            if problem := _value_problem(task, doc):
                raise ValueError(f"{path}:{i}: {problem}")
            n += 1
    if n == 0:
        raise ValueError(f"{path} has no examples")
    return n


def _hub_cached(path: str, name: str | None) -> bool:
    """Whether a hub dataset has anything in the local HF caches (hub snapshots or datasets' Arrow)."""
    from huggingface_hub import constants

    hub_cache = Path(constants.HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}"
    ds_cache = Path(os.environ.get("HF_DATASETS_CACHE", Path(constants.HF_HOME) / "datasets"))
    return hub_cache.is_dir() or (ds_cache / path.replace("/", "___")).is_dir()


def check_tasks(tasks, task_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Validate task names, local files and hub access in seconds, before any long work."""
    tasks = _norm_tasks(tasks)
    if task_dir is not None:
        d = Path(task_dir).expanduser()
        if not d.is_dir():
            raise ValueError(f"task_dir {str(task_dir)!r} is not a directory (resolved: {d.resolve()})")
        for t in tasks:
            if t in PAPER_TASKS:
                check_task_file(t, d / f"{t}.jsonl")
    for t in tasks:
        if t in OFFLINE_TASKS or (t in PAPER_TASKS and task_dir is not None):
            continue
        if not hub.hub_reachable() and not _hub_cached(*_SPECS[t][2]):
            raise hub.HubUnavailable(
                f"zero-shot task {t!r} needs the Hugging Face dataset {_SPECS[t][2][0]!r}, the hub cannot be "
                f"reached (offline) and it is not in the local cache. Use the offline proxies "
                f"({', '.join(OFFLINE_TASKS)}), a task_dir of local JSONL files (see "
                f"wanda_core.zeroshot), or a machine with internet."
            )
    return tasks


# --- the offline proxy suite ------------------------------------------------------------------
_ABBREV = re.compile(r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|No|vs|etc|ca|c|approx|Inc|Co|Ltd|Gen|Col|"
                     r"Lt|Rev|Prof|Fr|Ft)|\.[A-Za-z])\.$")
# Word caps keep the suite to a few CPU minutes: cost is tokens (x4 choices for wiki_nextsent).
_MAX_WORDS = {"wiki_lastword": 60, "wiki_nextsent": 30}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]")


def sentences(text: str) -> list[str]:
    """Split on sentence ends, not after initials and common abbreviations (St., Dr., U.S.)."""
    out: list[str] = []
    for part in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“‘'(])", text.strip()):
        if out and _ABBREV.search(out[-1]):
            out[-1] += " " + part
        else:
            out.append(part)
    return out


def build_offline_suite(n: int | None = None, seed: int = OFFLINE_SEED) -> dict[str, list[dict]]:
    """The two proxy tasks' examples from the wiki TEST split; the same on every call and machine.
    n: examples per task (default OFFLINE_SIZE); a smaller n gives a prefix of the default suite."""
    size = {t: n or OFFLINE_SIZE[t] for t in OFFLINE_TASKS}
    from .data import _article_text, wiki_articles

    calib = "\n\n".join(_article_text(a) for a in wiki_articles("calib"))
    seen_in_calib = functools.lru_cache(maxsize=None)(lambda s: s in calib)
    arts = wiki_articles("test")  # already in a fixed pseudo-random order (sha256 of the title)
    split = [sentences(a["extract"]) for a in arts]

    lastword = []
    for a, sents in zip(arts, split):
        best = None
        for k in range(1, len(sents)):  # longest short passage whose last word was already seen in it
            passage = " ".join(sents[: k + 1])
            if len(passage.split()) > _MAX_WORDS["wiki_lastword"]:
                break
            m = re.fullmatch(r"(.*\S)\s+(\S+)\.", passage, re.S)
            if m and _WORD.fullmatch(m[2]) and re.search(rf"\b{re.escape(m[2])}\b", m[1]):
                best = (m[1], " " + m[2])
        if best and not seen_in_calib(best[0]):
            lastword.append({"title": a["title"], "context": best[0], "target": best[1]})
        if len(lastword) == size["wiki_lastword"]:
            break

    cap = _MAX_WORDS["wiki_nextsent"]
    pool = sorted((len(s[1]), i) for i, s in enumerate(split)
                  if len(s) >= 2 and len(s[1].split()) <= cap and not seen_in_calib(s[1]))
    nextsent = []
    for rank, (length, i) in sorted(enumerate(pool), key=lambda x: x[1][1]):
        first, true = split[i][0], split[i][1]
        if not 6 <= len(first.split()) <= cap or seen_in_calib(first):
            continue
        rng = random.Random(f"{seed}:{arts[i]['title']}")
        near = [pool[j][1] for j in range(max(0, rank - 12), min(len(pool), rank + 13)) if j != rank]
        others = [split[j][1] for j in rng.sample(near, 3)]  # similar length: no length shortcut
        choices = [true] + others
        rng.shuffle(choices)
        nextsent.append({"title": arts[i]["title"], "context": first, "choices": choices,
                         "label": choices.index(true)})
        if len(nextsent) == size["wiki_nextsent"]:
            break
    return {"wiki_lastword": lastword, "wiki_nextsent": nextsent}


_OFFLINE_YAML = {
    "wiki_lastword": {
        "output_type": "loglikelihood", "doc_to_text": "{{context}}", "doc_to_target": "{{target}}",
        "target_delimiter": "", "task_alias": "wiki_lastword (PROXY: LAMBADA-style)",
    },
    "wiki_nextsent": {
        "output_type": "multiple_choice", "doc_to_text": "{{context}}", "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{label}}", "task_alias": "wiki_nextsent (PROXY: HellaSwag-style)",
    },
}


# --- generated task configs -------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    """Write only when different, atomically (parallel processes write the same bytes)."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=1000)


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _split_keys(split: str) -> dict:
    """Pin the evaluation split: a split key set to null is never read."""
    return {"training_split": None, "validation_split": split if split == "validation" else None,
            "test_split": split if split == "test" else None}


@functools.lru_cache(maxsize=1)
def offline_task_dir() -> Path:
    """Directory of the proxy tasks' YAML + JSONL (built once, then read from the cache)."""
    key = hashlib.sha256(f"{_OFFLINE_VERSION}:{sorted(OFFLINE_SIZE.items())}:{OFFLINE_SEED}".encode()).hexdigest()[:10]
    d = cache_dir() / "zeroshot" / f"offline-{key}"
    if not all((d / f"{t}.jsonl").is_file() for t in OFFLINE_TASKS):
        t0 = time.time()
        for name, docs in build_offline_suite().items():
            _write(d / f"{name}.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in docs))
        log.info("built the offline proxy tasks in %.1f s into %s", time.time() - t0, d)
    for name in OFFLINE_TASKS:
        cfg = {"task": name, "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {"test": str(d / f"{name}.jsonl")}}, **_split_keys("test"),
               **_OFFLINE_YAML[name], "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
               "metadata": {"version": _OFFLINE_VERSION, "proxy_for": PROXY_FOR[name],
                            "source": "wanda_core embedded Wikipedia, test split"}}
        _write(d / f"{name}.yaml", f"# generated by wanda_core.zeroshot: a PROXY task, not the paper's\n{_yaml(cfg)}")
    return d


@functools.lru_cache(maxsize=1)
def _tmp_dir() -> Path:
    tmp = tempfile.TemporaryDirectory(prefix="wanda_zeroshot_")
    _KEEP.append(tmp)  # removed when the interpreter exits
    return Path(tmp.name)


_KEEP: list = []


def _paper_task_yaml(task: str, task_dir: Path | None) -> Path:
    """A YAML that includes lm-eval's own config and pins the split (and, local, the data file)."""
    rel, split, _, _ = _SPECS[task]
    cfg: dict[str, Any] = {"include": str(_lm_eval_tasks_dir() / rel), "task": task, **_split_keys(split)}
    if task_dir is None:
        d = cache_dir() / "zeroshot" / "hub"
    else:  # per process: the YAML is read once, when lm-eval builds the task
        d = _tmp_dir() / hashlib.sha256(str(task_dir).encode()).hexdigest()[:10]
        cfg.update(dataset_path="json", dataset_name=None,
                   dataset_kwargs={"data_files": {split: str(task_dir / f"{task}.jsonl")}})
    _write(d / f"{task}.yaml", f"# generated by wanda_core.zeroshot\n{_yaml(cfg)}")
    return d / f"{task}.yaml"


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


def _load_tasks(tasks: tuple[str, ...], task_dir: Path | None) -> dict:
    """lm-eval's TaskDict for `tasks`, few-shot counts set, splits checked."""
    L = _lm_eval()
    specs = []
    for t in tasks:
        if t in OFFLINE_TASKS:
            specs.append(str(offline_task_dir() / f"{t}.yaml"))
        elif t in PAPER_TASKS:
            specs.append(str(_paper_task_yaml(t, task_dir)))
        else:
            specs.append(t)  # mmlu: a group, from the TaskManager's index
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
        return c == re.sub(r"\[.*?\]", "", gold.strip().replace(" [title]", ". ")).replace("  ", " ")
    if task == "winogrande":
        blank = doc["sentence"].index("_")
        return ctx.endswith(doc["sentence"][:blank] + doc["option" + str(doc["answer"])])
    if task in ("arc_easy", "arc_challenge", "openbookqa"):
        return c == doc["choices"]["text"][doc["choices"]["label"].index(doc["answerKey"].strip())]
    if task.startswith("mmlu"):
        return c == "ABCD"[doc["answer"]]
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


def evaluate_tasks(model, tokenizer, tasks, task_dir: str | os.PathLike | None = None, limit: int | None = None,
                   batch_size: int = 8, add_bos: bool = False, progress: bool = False) -> dict:
    """Accuracy of `model` on `tasks` through lm-eval. `model` is a HF causal LM (evaluated in memory),
    an lm-eval `LM`, or "oracle" (see make_oracle). Returns
    {"tasks": {name: {"acc", "acc_stderr", "n", "proxy"}}, "mean_acc", "mean_over", "lm_eval_version",
    "seconds", "limit", "task_dir"}; mean_acc is the unweighted mean over the tasks other than mmlu.
    progress=True shows lm-eval's progress bars (off by default: notebooks stay readable)."""
    t0 = time.time()
    tasks = check_tasks(tasks, task_dir)
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
             f"files in {tdir}" if tdir else "hub/offline")
    with _quiet(progress):
        # evaluate(), not simple_evaluate(): the latter reseeds the caller's global RNGs and shells
        # out to git for a commit hash of the current directory
        res = L["evaluator"].evaluate(lm=lm, task_dict=_load_tasks(tasks, tdir), limit=limit,
                                      log_samples=False, bootstrap_iters=1000)
    out: dict[str, dict] = {}
    for t in tasks:
        r = res["results"][t]
        n = sum(v["effective"] for k, v in res["n-samples"].items() if k == t or (t == "mmlu" and k.startswith("mmlu_")))
        out[t] = {"acc": float(r["acc,none"]), "acc_stderr": _num(r.get("acc_stderr,none")), "n": int(n),
                  "proxy": t in OFFLINE_TASKS}
    over = [t for t in tasks if t not in EXTRA_TASKS] or list(tasks)
    return {"tasks": out, "mean_acc": sum(out[t]["acc"] for t in over) / len(over), "mean_over": over,
            "lm_eval_version": L["version"], "seconds": round(time.time() - t0, 2), "limit": limit,
            "task_dir": str(tdir) if tdir else None}


__all__ = ["PAPER_TASKS", "OFFLINE_TASKS", "EXTRA_TASKS", "KNOWN_TASKS", "PROXY_FOR", "check_tasks",
           "check_task_file", "evaluate_tasks", "build_offline_suite", "offline_task_dir", "make_oracle"]
