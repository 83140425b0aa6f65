"""Fine-tuning a pruned model: masked training holds the mask, LoRA leaves the base untouched, the
loss goes down, an interrupted run resumes, and every bad input fails before training."""
import json
import subprocess
import sys

import pytest
import torch

from wanda_core import RunConfig
from wanda_core.finetune import run as ft
from wanda_core.runs import runner
from wanda_core.finetune import FinetuneConfig

SMALL = dict(model="tiny-llama", nsamples=2, seqlen=32, eval_windows=4, batch_size=2)
TRAIN = dict(steps=6, seqlen=32, batch_size=2, warmup_steps=0, checkpoint_every=0)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A Wanda 50% record of tiny-llama with its weights saved, and a dense record."""
    d = tmp_path_factory.mktemp("runs")
    rec = runner.run(RunConfig(method="wanda", save_weights=True, **SMALL), d, progress=False)
    dense = runner.run(RunConfig(method="dense", **SMALL), d, progress=False)
    return d / f"{rec['id']}.json", d / f"{dense['id']}.json", rec


def _weights(path):
    return torch.load(path.parent / "weights" / f"{json.loads(path.read_text())['id']}.pt")


def test_masked_training_keeps_every_pruned_weight_zero_and_lowers_the_loss(pruned, tmp_path):
    path, _, src = pruned
    rec = ft.finetune(FinetuneConfig(from_record=str(path), how="masked", lr=3e-3, save_weights=True, **TRAIN),
                      tmp_path, progress=False)
    s = rec["sparsity"]
    assert s["before"]["zeros"] == s["after"]["zeros"] > 0  # count for count
    assert s["same_positions"] and s["pruned_weights_nonzero"] == 0
    # the same positions, read back from the trained weights themselves
    trained, start = torch.load(rec["weights"]), _weights(path)
    blocks = [k for k in trained if ".layers." in k and k.endswith("proj.weight")]
    assert len(blocks) == len(start) and blocks
    zeros_after = sum(int((trained[k] == 0).sum()) for k in blocks)
    assert zeros_after == sum(int((w == 0).sum()) for w in start.values())
    assert any(not torch.equal(trained[k], w) for k, w in zip(sorted(blocks), [start[k] for k in sorted(start)]))
    assert rec["loss_curve"][-1] < rec["loss_curve"][0]
    assert rec["tokens_seen"] == 6 * 2 * 32 and len(rec["loss_curve"]) == 6
    # evaluated before on the pruned record's own windows: the same perplexity it recorded
    before = rec["ppl"]["wiki"]["before"]
    assert before["ppl"] == pytest.approx(src["results"]["ppl"]["wiki"]["ppl"], rel=1e-5)
    assert len(before["nll"]) == len(rec["ppl"]["wiki"]["after"]["nll"]) == 4
    assert rec["ppl"]["wiki"]["after"]["ppl"] < before["ppl"]
    assert rec["source"]["id"] == src["id"] and rec["provenance"]["peft"]
    text = rec["training_text"]
    assert text["source"] == "wiki" and text["calibration_tokens_shared"] == 0 and text["calibration_windows_avoided"] == 2


def test_lora_leaves_the_base_untouched_and_merging_would_fill_it(pruned, tmp_path):
    path, _, _ = pruned
    rec = ft.finetune(FinetuneConfig(from_record=str(path), how="lora", lr=1e-2, eval_at=(3,), **TRAIN),
                      tmp_path, progress=False)
    s = rec["sparsity"]
    assert s["before"] == s["after"]  # the base's zeros, unchanged
    assert s["merged"]["adapted_layers"] == 2 * 2  # q_proj and v_proj in each of 2 blocks
    assert s["merged"]["zeros"] < s["after"]["zeros"]  # a low-rank update is dense
    adapter = torch.load(rec["adapter"])
    assert adapter and all("lora_" in k for k in adapter)
    assert rec["trainable_params"] == sum(t.numel() for t in adapter.values())
    assert [c["step"] for c in rec["ppl_curve"]] == [0, 3, 6]
    assert rec["loss_curve"][-1] < rec["loss_curve"][0]


def test_a_finished_record_is_reused_and_an_interrupted_run_resumes(pruned, tmp_path, monkeypatch):
    path, _, _ = pruned
    cfg = dict(from_record=str(path), how="lora", lr=1e-2, **{**TRAIN, "checkpoint_every": 2})
    whole = ft.finetune(FinetuneConfig(**cfg), tmp_path / "a", progress=False)
    real = ft._save_checkpoint

    def save_then_stop(p, *a):
        real(p, *a)
        if a[-1]["step"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(FinetuneConfig(**cfg), tmp_path / "b", progress=False)
    records = [p for p in (tmp_path / "b").glob("*.json") if not p.name.startswith("before-")]
    assert not records and list((tmp_path / "b").glob("*.ckpt.pt"))  # no record yet, a checkpoint
    monkeypatch.setattr(ft, "_save_checkpoint", lambda *a: pytest.fail("trained from the start again"))
    resumed = ft.finetune(FinetuneConfig(**cfg), tmp_path / "b", progress=False)
    assert resumed["loss_curve"] == pytest.approx(whole["loss_curve"], rel=1e-4)
    assert resumed["ppl"]["wiki"]["after"]["ppl"] == pytest.approx(whole["ppl"]["wiki"]["after"]["ppl"], rel=1e-4)
    assert not list((tmp_path / "b").glob("*.ckpt.pt"))
    monkeypatch.setattr(runner.models, "load_model", lambda *a, **k: pytest.fail("reloaded for a finished record"))
    assert ft.finetune(FinetuneConfig(**cfg), tmp_path / "b", progress=False)["id"] == resumed["id"]


def test_bad_inputs_fail_before_training(pruned, tmp_path, runs_dir):
    path, dense, _ = pruned
    no_weights = runner.run(RunConfig(method="magnitude", **SMALL), runs_dir, progress=False)
    bad = {
        "steps": (dict(from_record=str(path), steps=0), "steps must be"),
        "no record": (dict(from_record=str(tmp_path / "missing.json")), "no run record"),
        "no weights": (dict(from_record=str(runs_dir / f"{no_weights['id']}.json")), "were not saved"),
        "dense": (dict(from_record=str(dense)), "dense model"),
        "target": (dict(from_record=str(path), lora_targets=("c_attn",)), "unknown LoRA target module(s) c_attn"),
        "how": (dict(from_record=str(path), how="full"), "unknown how 'full'"),
    }
    from wanda_core.models import data

    article = data.wiki_articles("test")[0]
    leak = tmp_path / "leak.txt"
    leak.write_text(f"{article['title']}\n\n{article['extract']}")
    bad["overlap"] = (dict(from_record=str(path), train_text=str(leak)), "shares 1 document(s) with the evaluation")
    bad["hub"] = (dict(from_record=str(path), train_text="c4"), "cannot be checked offline")
    from wanda_core.finetune import run as mod

    def no_training(*a, **k):
        raise AssertionError("training started")

    for name, (kw, msg) in bad.items():
        with pytest.MonkeyPatch.context() as m:
            m.setattr(mod, "training_windows", no_training)
            with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
                ft.finetune(FinetuneConfig(**kw), tmp_path / "ft", progress=False)


def test_paired_change_by_hand():
    c = ft.paired_change(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.5, 2.5]))
    assert c["mean"] == pytest.approx(-0.5) and c["low"] == pytest.approx(-0.5) and c["high"] == pytest.approx(-0.5)
    assert c["ppl_ratio"] == pytest.approx(0.6065306597)
    c = ft.paired_change(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0]))
    assert c["mean"] == 0 and c["low"] == pytest.approx(-1) and c["high"] == pytest.approx(1)
    p = ft.ppl_interval(torch.tensor([0.0, 2.0]))
    assert p["ppl"] == pytest.approx(2.718281828) and p["low"] == 1.0 and p["high"] == pytest.approx(7.389056099)


def test_training_windows_avoid_the_excluded_tokens():
    from wanda_core.models.loaders import load_tokenizer

    tok = load_tokenizer("tiny-llama")
    w, info = ft.training_windows(tok, "wiki", 16, 50, seed=0, exclude=[(0, 40), (100, 101)])
    starts = info["starts"]
    assert len(starts) == 50 == len(set(starts)) and w.shape == (50, 16)
    assert all(s % 16 == 0 and (s >= 40) and not (s <= 100 < s + 16) for s in starts)
    assert info["calibration_tokens_shared"] == 0


def test_cli_lists_every_field_and_runs(pruned, tmp_path):
    import dataclasses

    out = subprocess.run([sys.executable, "-m", "wanda_core", "finetune", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for f in dataclasses.fields(FinetuneConfig):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in out.stdout, flag
    path, _, _ = pruned
    out = subprocess.run([sys.executable, "-m", "wanda_core", "finetune", "--from", str(path), "--how", "masked",
                          "--steps", "0", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 2 and "steps must be a whole number >= 1, got 0" in out.stderr
    out = subprocess.run([sys.executable, "-m", "wanda_core", "finetune", "--from", str(path), "--how", "masked",
                          "--steps", "2", "--seqlen", "16", "--batch-size", "1", "--runs-dir", str(tmp_path), "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "zeros" in out.stdout and "record:" in out.stdout
    record = out.stdout.split("record: ")[1].strip()
    shown = subprocess.run([sys.executable, "-m", "wanda_core", "show", record], capture_output=True, text=True)
    assert shown.returncode == 0 and "masked 2 steps" in shown.stdout
