"""The two offline PROXY tasks, built from the embedded Wikipedia TEST split (never calibration text):
wiki_lastword (LAMBADA-style last word) and wiki_nextsent (HellaSwag-style continuation); see
wanda_core.evaluation.tasks for what they stand for. The same examples on every call and machine.

    d = offline_task_dir()     # <cache>/zeroshot/offline-<key>/{wiki_lastword,wiki_nextsent}.{jsonl,yaml}
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import re
import time
from pathlib import Path

from wanda_core.evaluation.lmeval_yaml import split_keys, to_yaml, write_if_changed
from wanda_core.evaluation.tasks import OFFLINE_SEED, OFFLINE_SIZE, OFFLINE_TASKS, PROXY_FOR, PROXY_VERSION
from wanda_core.paths import cache_dir

log = logging.getLogger(__name__)

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
    from wanda_core.models.data import _article_text, wiki_articles

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



@functools.lru_cache(maxsize=1)
def offline_task_dir() -> Path:
    """Directory of the proxy tasks' YAML + JSONL (built once, then read from the cache)."""
    key = hashlib.sha256(f"{PROXY_VERSION}:{sorted(OFFLINE_SIZE.items())}:{OFFLINE_SEED}".encode()).hexdigest()[:10]
    d = cache_dir() / "zeroshot" / f"offline-{key}"
    if not all((d / f"{t}.jsonl").is_file() for t in OFFLINE_TASKS):
        t0 = time.time()
        for name, docs in build_offline_suite().items():
            write_if_changed(d / f"{name}.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in docs))
        log.info("built the offline proxy tasks in %.1f s into %s", time.time() - t0, d)
    for name in OFFLINE_TASKS:
        cfg = {"task": name, "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {"test": str(d / f"{name}.jsonl")}}, **split_keys("test"),
               **_OFFLINE_YAML[name], "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
               "metadata": {"version": PROXY_VERSION, "proxy_for": PROXY_FOR[name],
                            "source": "wanda_core embedded Wikipedia, test split"}}
        write_if_changed(d / f"{name}.yaml", f"# generated by wanda_core.evaluation.proxy_tasks: a PROXY task, not the paper's\n{to_yaml(cfg)}")
    return d
