"""Zero-shot evaluation through lm-eval: local task files, the offline proxy suite, the oracle,
and errors that come before any long work. Runs a 2-block random model, so accuracies here
prove the path, not the model."""
import json
import time

import pytest

import wanda_core  # noqa: F401  (sets the HF offline variables before lm-eval is imported)
from wanda_core.models import hub
from wanda_core.evaluation import proxy_tasks, tasks as registry, zeroshot as zs
from wanda_core.models.data import _article_text, wiki_articles

# Three examples per task, gold answers in different positions, in each dataset's hub schema.
LOCAL = {
    "boolq": [
        {"question": "is the sky blue on a clear day", "passage": "On a clear day the sky looks blue.", "label": 1},
        {"question": "do fish live on the moon", "passage": "Fish live in water on Earth.", "label": 0},
        {"question": "is ice frozen water", "passage": "Ice is water in its solid state.", "label": 1},
    ],
    "rte": [
        {"sentence1": "A dog runs in the park.", "sentence2": "An animal is outside.", "label": 0},
        {"sentence1": "The shop closed at noon.", "sentence2": "The shop was open all night.", "label": 1},
        {"sentence1": "Anna wrote two books.", "sentence2": "Anna is an author.", "label": 0},
    ],
    "hellaswag": [
        {"activity_label": "Cooking", "ctx_a": "A man cracks eggs into a bowl.", "ctx_b": "he",
         "endings": ["sings to the bowl.", "whisks them with a fork.", "paints the wall.", "drives away."], "label": "1"},
        {"activity_label": "Home", "ctx_a": "[header] How to fold a shirt [title] Lay it flat.", "ctx_b": "then",
         "endings": ["fold the sleeves [step] in.", "eat it.", "throw it [title] away.", "burn it."], "label": "0"},
        {"activity_label": "Sports", "ctx_a": "A girl holds a racket.", "ctx_b": "she",
         "endings": ["sleeps.", "reads.", "cooks.", "hits the ball over the net."], "label": "3"},
    ],
    "winogrande": [
        {"sentence": "The trophy did not fit in the suitcase because _ was too big.",
         "option1": "the trophy", "option2": "the suitcase", "answer": "1"},
        {"sentence": "The trophy did not fit in the suitcase because _ was too small.",
         "option1": "the trophy", "option2": "the suitcase", "answer": "2"},
        {"sentence": "Sam thanked Kim because _ had helped a lot.", "option1": "Sam", "option2": "Kim", "answer": "2"},
    ],
    "arc_easy": [
        {"question": "Which gas do plants take in?", "answerKey": "B",
         "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}},
        {"question": "What melts ice?", "answerKey": "1", "choices": {"text": ["heat", "cold", "dark"], "label": ["1", "2", "3"]}},
        {"question": "What do bees make?", "answerKey": "D",
         "choices": {"text": ["milk", "silk", "wool", "honey"], "label": ["A", "B", "C", "D"]}},
    ],
    "openbookqa": [
        {"question_stem": "The sun is a", "answerKey": "C",
         "choices": {"text": ["planet", "moon", "star", "comet"], "label": ["A", "B", "C", "D"]}},
        {"question_stem": "Water boils at", "answerKey": "A",
         "choices": {"text": ["100 C", "10 C", "0 C", "-5 C"], "label": ["A", "B", "C", "D"]}},
        {"question_stem": "Magnets attract", "answerKey": "B",
         "choices": {"text": ["wood", "iron", "glass", "paper"], "label": ["A", "B", "C", "D"]}},
    ],
}
LOCAL["arc_challenge"] = LOCAL["arc_easy"][::-1]


def write_tasks(d, tasks=LOCAL):
    d.mkdir(parents=True, exist_ok=True)
    for name, docs in tasks.items():
        (d / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    return d


@pytest.fixture(scope="module")
def tiny():
    from wanda_core.models.loaders import load_model

    model, tok, info = load_model("tiny-llama")
    return model, tok, info


@pytest.fixture(scope="module")
def suite():
    return proxy_tasks.build_offline_suite(n=60)


# --- bad inputs fail fast and say what is valid -------------------------------------------------
def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'hellaswg'.*valid: boolq, rte, hellaswag.*wiki_nextsent"):
        registry.check_tasks(["boolq", "hellaswg"])


def test_missing_file_is_named(tmp_path):
    write_tasks(tmp_path, {"boolq": LOCAL["boolq"]})
    with pytest.raises(ValueError, match=r"rte\.jsonl not found.*sentence1, sentence2, label"):
        registry.check_tasks(["boolq", "rte"], task_dir=tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        registry.check_tasks(["boolq"], task_dir=tmp_path / "nope")


@pytest.mark.parametrize("task, doc, message", [
    ("arc_easy", {"question": "q", "answerKey": "A", "choices": {"label": ["A"]}}, r"arc_easy\.jsonl:2: missing field 'choices\.text'"),
    ("boolq", {"question": "q", "label": 1}, r"boolq\.jsonl:2: missing field 'passage'"),
    ("winogrande", {"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}, r"winogrande\.jsonl:2: .*'_'"),
    ("openbookqa", {"question_stem": "q", "answerKey": "E", "choices": {"text": ["x"], "label": ["A"]}}, r"answerKey 'E'"),
])
def test_bad_fields_name_file_line_and_field(tmp_path, task, doc, message):
    write_tasks(tmp_path, {task: [LOCAL[task][0], doc]})
    with pytest.raises(ValueError, match=message):
        registry.check_tasks([task], task_dir=tmp_path)


def test_hub_task_offline_fails_fast(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(hub, "_online", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    t0 = time.time()
    for task, dataset in (("arc_challenge", "allenai/ai2_arc"), ("mmlu", "cais/mmlu")):
        with pytest.raises(hub.HubUnavailable, match=rf"'{task}'.*'{dataset}'.*offline.*Available offline: boolq"):
            zs.evaluate_tasks(None, None, [task], source="hub")
    assert time.time() - t0 < 5
    (tmp_path / "datasets" / "allenai___ai2_arc").mkdir(parents=True)  # cached: allowed
    assert registry.check_tasks(["arc_easy"], source="hub") == ("arc_easy",)


def test_bad_limit(tmp_path):
    with pytest.raises(ValueError, match="task limit"):
        zs.evaluate_tasks("oracle", None, ["wiki_nextsent"], limit=0)


# --- the offline proxy suite --------------------------------------------------------------------
def test_offline_suite_is_deterministic_and_matches_the_cached_files(suite):
    assert proxy_tasks.build_offline_suite(n=60) == suite
    for name, docs in suite.items():
        assert len(docs) == 60
        cached = (proxy_tasks.offline_task_dir() / f"{name}.jsonl").read_text().splitlines()
        assert [json.loads(x) for x in cached[:60]] == docs  # a stale cache would differ


def test_offline_suite_uses_test_text_only(suite):
    test_titles = {a["title"] for a in wiki_articles("test")}
    calib = "\n\n".join(_article_text(a) for a in wiki_articles("calib"))
    for ex in suite["wiki_lastword"]:
        assert ex["title"] in test_titles
        assert ex["context"] not in calib and ex["target"].strip() in ex["context"]
    for ex in suite["wiki_nextsent"]:
        assert ex["title"] in test_titles
        assert ex["context"] not in calib and not any(c in calib for c in ex["choices"])
        assert len(set(ex["choices"])) == 4
    assert {ex["label"] for ex in suite["wiki_nextsent"]} == {0, 1, 2, 3}


# --- the paper's splits --------------------------------------------------------------------------
PAPER_SPLIT = {"boolq": "validation", "rte": "validation", "hellaswag": "validation", "winogrande": "validation",
               "arc_easy": "test", "arc_challenge": "test", "openbookqa": "test"}


def test_paper_tasks_evaluate_the_papers_splits(tmp_path):
    loaded = zs._load_tasks(registry.PAPER_TASKS, write_tasks(tmp_path).resolve())
    for name, task in loaded["tasks"].items():
        docs = task.eval_docs  # what lm-eval will score
        assert (task.config.test_split or task.config.validation_split) == PAPER_SPLIT[name]
        assert task.config.num_fewshot == 0 and len(docs) == len(LOCAL[name])


# --- the oracle proves the scoring path ---------------------------------------------------------
def test_oracle_scores_one_and_inverse_zero(tmp_path, monkeypatch):
    write_tasks(tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)  # a relative task_dir
    tasks = registry.PAPER_TASKS + registry.OFFLINE_TASKS
    r = zs.evaluate_tasks("oracle", None, tasks, task_dir="tasks", limit=20)
    assert {t: v["acc"] for t, v in r["tasks"].items()} == {t: 1.0 for t in tasks}
    assert r["mean_acc"] == 1.0 and r["tasks"]["boolq"]["n"] == 3 and r["tasks"]["wiki_lastword"]["n"] == 20
    bad = zs.evaluate_tasks(zs.make_oracle(inverse=True), None, tasks, task_dir="tasks", limit=20)
    assert {t: v["acc"] for t, v in bad["tasks"].items()} == {t: 0.0 for t in tasks}


# --- a real (tiny) model end to end -------------------------------------------------------------
def test_tiny_model_on_local_files(tiny, tmp_path):
    model, tok, info = tiny
    r = zs.evaluate_tasks(model, tok, registry.PAPER_TASKS, task_dir=write_tasks(tmp_path), add_bos=info.add_bos)
    assert list(r["tasks"]) == list(registry.PAPER_TASKS) and r["lm_eval_version"].startswith("0.4")
    for t, v in r["tasks"].items():
        assert v["n"] == len(LOCAL[t]) and not v["proxy"]
        assert v["acc"] in {0.0, 1 / 3, 2 / 3, 1.0}  # a fraction of the three examples
    assert r["mean_acc"] == pytest.approx(sum(v["acc"] for v in r["tasks"].values()) / 7)


@pytest.mark.parametrize("name,budget", [("tiny-llama", 64), ("tiny-llama", 1024), ("tiny-gemma3", 64),
                                         ("tiny-opt", 64), ("tiny-gpt-neox", 1024)])
def test_scored_positions_equal_hflm(name, budget, monkeypatch):
    """The LM that runs the output layer only where lm-eval scores, in batches sized by tokens, gives
    HFLM's own loglikelihoods and greedy flags: choices of one and several tokens on one context
    (across Gemma-3's 16-token sliding window), contexts with one continuation or two one-token ones
    (one forward, as HFLM), rows of different lengths in one batch and batches of one row, inputs cut
    from the left at max_length, on four architectures."""
    import random

    from wanda_core.models.loaders import load_model

    model, tok, _ = load_model(name)
    L = zs._lm_eval()
    rng = random.Random(0)
    toks = lambda n: [rng.randrange(1, 200) for _ in range(n)]  # noqa: E731
    reqs = []
    for n_ctx in (3, 9, 14, 25, 40):  # multiple choice: shared context
        ctx = toks(n_ctx)
        for cont in ([5], [6], [7, 8], [7, 8, 9, 10], toks(6)):
            reqs.append(((f"c{n_ctx}", str(cont)), ctx, cont))
    for n_ctx in (1, 2, 7, 20, 33):  # nothing to share: one continuation, or two of one token
        ctx = toks(n_ctx)
        reqs += [((f"s{n_ctx}", "a"), ctx, toks(1 + n_ctx % 3)), ((f"t{n_ctx}", "y"), ctx, [11]),
                 ((f"t{n_ctx}", "n"), ctx, [12])]
    ref_lm = L["HFLM"](pretrained=model, tokenizer=tok, batch_size=4, max_length=32)
    new_lm = zs._scored_lm_class()(pretrained=model, tokenizer=tok, batch_size=4, max_length=32)
    monkeypatch.setitem(zs.TOKENS_PER_BATCH, "cpu", budget)  # 64: batches of 2 to 21 rows, and of 1
    ref = ref_lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    got = new_lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert [g for _, g in got] == [g for _, g in ref]
    assert [x for x, _ in got] == pytest.approx([x for x, _ in ref], rel=1e-5, abs=1e-4)
    assert len({round(x, 3) for x, _ in ref}) > len(reqs) // 2  # the requests really differ


def test_tiny_model_on_offline_suite(tiny):
    model, tok, _ = tiny
    r = zs.evaluate_tasks(model, tok, registry.OFFLINE_TASKS, limit=12, batch_size=4)
    for v in r["tasks"].values():
        assert v["n"] == 12 and v["proxy"] and 0 <= v["acc"] <= 1 and v["acc_stderr"] is not None
    # a random 2-block model cannot predict Wikipedia's last words
    assert r["tasks"]["wiki_lastword"]["acc"] < 0.5


# --- the Table 2 experiment's arithmetic -----------------------------------------------------------
def test_table2_mean_stderr_and_resolution_by_hand():
    import pandas as pd

    from wanda_core.study.experiments import zeroshot as ex

    rows = []
    for config, method, accs in (("dense", "dense", (0.60, 0.70)), ("wanda 50%", "wanda", (0.58, 0.69)),
                                 ("magnitude 50%", "magnitude", (0.40, 0.50))):
        for task, a, se in zip(("boolq", "rte"), accs, (0.03, 0.04)):
            rows.append({"model": "m", "params": 1, "config": config, "method": method, "structure": "unstructured",
                         "task": task, "acc": a, "stderr": se, "n": 100, "chance": 0.5, "at_chance": False,
                         "in_mean": True})
    rows.append({**rows[0], "task": "lambada_openai", "in_mean": False, "acc": 0.1})  # kept out of the mean
    mean = ex.means(pd.DataFrame(rows)).set_index("config")
    assert mean.at["dense", "mean_acc"] == pytest.approx(0.65)
    assert mean.at["dense", "stderr"] == pytest.approx(0.025)  # sqrt(0.03^2 + 0.04^2) / 2
    assert mean.at["dense", "n_total"] == 200
    cmp = ex.comparisons(mean.reset_index()).set_index(["a", "b"])
    assert cmp.at[("dense", "magnitude 50%"), "diff"] == pytest.approx(0.2)
    assert cmp.at[("dense", "magnitude 50%"), "stderr"] == pytest.approx(0.025 * 2 ** 0.5)
    assert cmp.at[("dense", "magnitude 50%"), "resolved"]  # 0.2 > 2 x 0.035
    assert not cmp.at[("dense", "wanda 50%"), "resolved"]  # 0.015 < 2 x 0.035
