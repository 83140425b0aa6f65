"""Run records: fields, reuse, atomic writes, resume, saved weights and the command line."""
import json
import os
import subprocess
import sys

import pytest

from wanda_core import RunConfig
from wanda_core.runs import runner
from wanda_core.runs.records import atomic_write_json, read_json

SMALL = dict(model="tiny-llama", nsamples=2, seqlen=32, eval_windows=2, batch_size=2)


def test_record_has_what_the_book_needs(runs_dir):
    rec = runner.run(RunConfig(method="wanda", **SMALL), runs_dir, progress=False)
    path = runs_dir / f"{rec['id']}.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(rec))
    for key in ("config", "prune_fields", "calibration", "prune", "results", "seconds", "peak_memory_mb", "provenance"):
        assert key in rec, key
    assert rec["calibration"]["nsamples"] == 2 and len(rec["calibration"]["windows"]) == 2
    assert rec["prune"]["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
    assert rec["results"]["ppl"]["wiki"]["windows"] == 2 and rec["results"]["ppl"]["wiki"]["ppl"] > 1
    import torch

    assert rec["provenance"]["versions"]["torch"] == torch.__version__  # the record says what it ran with
    assert set(rec["prune"]["seconds"]) >= {"total", "score_mask", "statistics_forward", "reforward"}


def test_rerun_reuses_the_record(runs_dir, monkeypatch):
    cfg = RunConfig(method="magnitude", **SMALL)
    first = runner.run(cfg, runs_dir, progress=False)
    monkeypatch.setattr(runner.engine, "prune_model", lambda *a, **k: pytest.fail("recomputed a finished run"))
    assert runner.run(cfg, runs_dir, progress=False) == first
    # asking for another evaluation the record lacks adds it (and prunes again: weights not kept)
    monkeypatch.undo()
    more = runner.run(cfg.replace(eval=("wiki", str(_txt(runs_dir)))), runs_dir, progress=False)
    assert set(more["results"]["ppl"]) == {"wiki", str(_txt(runs_dir))}
    assert more["results"]["ppl"]["wiki"]["ppl"] == pytest.approx(first["results"]["ppl"]["wiki"]["ppl"])


def test_truncated_record_is_named_then_recomputed(runs_dir, caplog):
    cfg = RunConfig(method="magnitude", **SMALL)
    first = runner.run(cfg, runs_dir, progress=False)
    path = runs_dir / f"{first['id']}.json"
    path.write_text(path.read_text()[:40])  # cut short, as by a full disk
    with caplog.at_level("WARNING"):
        again = runner.run(cfg, runs_dir, progress=False)
    assert any(f"run record {path} is unreadable" in r.getMessage() for r in caplog.records)
    assert again["results"]["ppl"]["wiki"]["ppl"] == pytest.approx(first["results"]["ppl"]["wiki"]["ppl"])
    assert read_json(path) == again  # rewritten whole


def test_sparsegpt_keeps_its_own_row_group_only():
    RunConfig(method="sparsegpt", group="row").validate()  # its own: accepted
    with pytest.raises(ValueError, match=r"score 'wanda' does not apply to method 'sparsegpt'.*valid with sparsegpt"):
        RunConfig(method="sparsegpt", score="wanda").validate()


def test_one_perplexity_per_dataset(runs_dir, monkeypatch):
    cfg = RunConfig(method="magnitude", save_weights=True, **SMALL)
    first = runner.run(cfg, runs_dir, progress=False)
    assert first["prune_fields"]["mask_rule"] == "threshold"  # the paper's magnitude baseline
    assert first["results"]["ppl"]["wiki"]["windows"] == 2 and "ppl_all" not in first["results"]
    # other windows: evaluated again (the kept weights, no new pruning) and replaced, not kept beside
    monkeypatch.setattr(runner.engine, "prune_model", lambda *a, **k: pytest.fail("pruned again"))
    one = runner.run(cfg.replace(eval_windows=1), runs_dir, progress=False)
    assert one["id"] == first["id"] and one["results"]["ppl"]["wiki"]["windows"] == 1
    assert one["results"]["ppl"]["wiki"]["ppl"] != first["results"]["ppl"]["wiki"]["ppl"]
    monkeypatch.setattr(runner, "perplexity", lambda *a, **k: pytest.fail("evaluated again"))
    assert runner.run(cfg.replace(eval_windows=1), runs_dir, progress=False) == one


def test_calibration_is_decided_by_the_config(runs_dir, monkeypatch):
    real = runner.data.calibration_windows
    asked = []

    def spy(*a, **k):
        asked.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(runner.data, "calibration_windows", spy)
    for method, needs in (("magnitude", False), ("wanda", True), ("dense", False)):
        cfg = RunConfig(method=method, **SMALL)
        assert cfg.needs_calibration == needs
        before = len(asked)
        rec = runner.run(cfg, runs_dir, progress=False)
        assert len(asked) - before == int(needs), method
        assert (rec.get("calibration") is not None) == needs, method


def _txt(d):
    d.mkdir(parents=True, exist_ok=True)
    p = d / "extra.txt"
    p.write_text("The quick brown fox jumps over the lazy dog. " * 80)
    return p


def test_saved_weights_are_reused(runs_dir, monkeypatch):
    cfg = RunConfig(method="wanda", save_weights=True, **SMALL)
    first = runner.run(cfg, runs_dir, progress=False)
    assert (runs_dir / "weights" / f"{first['id']}.pt").is_file()
    monkeypatch.setattr(runner.engine, "prune_model", lambda *a, **k: pytest.fail("pruned again"))
    more = runner.run(cfg.replace(eval=("wiki", str(_txt(runs_dir)))), runs_dir, progress=False)
    assert more["results"]["ppl"]["wiki"]["ppl"] == pytest.approx(first["results"]["ppl"]["wiki"]["ppl"], rel=1e-6)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"a": 2})
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_sweep_resumes_after_interruption(runs_dir, monkeypatch):
    cfgs = [RunConfig(method="magnitude", sparsity=s, **SMALL) for s in (0.2, 0.4)]
    calls = []
    real = runner.engine.prune_model

    def flaky(model, cfg, *a, **k):
        calls.append(cfg.sparsity)
        if cfg.sparsity == 0.4 and calls.count(0.4) == 1:
            raise KeyboardInterrupt  # the user stops the sweep during the second run
        return real(model, cfg, *a, **k)

    monkeypatch.setattr(runner.engine, "prune_model", flaky)
    with pytest.raises(KeyboardInterrupt):
        runner.run_many(cfgs, runs_dir, progress=False)
    assert len(list(runs_dir.glob("*.json"))) == 1
    recs = runner.run_many(cfgs, runs_dir, progress=False)
    assert calls == [0.2, 0.4, 0.4]  # the finished run was not redone
    assert [r["prune"]["sparsity"]["overall"] for r in recs] == pytest.approx([0.2, 0.4], abs=0.01)


def test_run_restores_dense_weights_between_runs(runs_dir):
    a = runner.run(RunConfig(method="dense", **SMALL), runs_dir, progress=False)
    runner.run(RunConfig(method="magnitude", sparsity=0.8, **SMALL), runs_dir, progress=False)
    b = runner.run(RunConfig(method="dense", **SMALL), runs_dir, progress=False, force=True)
    assert b["results"]["ppl"]["wiki"]["ppl"] == pytest.approx(a["results"]["ppl"]["wiki"]["ppl"], rel=1e-6)


def _cli(*args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "wanda_core", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_cli_prune_save_and_reload(tmp_path):
    out = tmp_path / "pruned"
    p = _cli("prune", "--model", "tiny-llama", "--method", "wanda", "--structure", "2:4", "--nsamples", "2",
             "--seqlen", "32", "--eval-windows", "2", "--runs-dir", "runs", "--save-model", str(out), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "ppl[wiki]" in p.stdout and "record: runs/" in p.stdout
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(out)
    w = m.model.layers[0].mlp.down_proj.weight
    assert ((w != 0).reshape(w.shape[0], -1, 4).sum(-1) <= 2).all()
    rec_path = next((tmp_path / "runs").glob("*.json"))
    ev = _cli("evaluate", "--model", str(out), "--seqlen", "32", "--eval-windows", "2", "--runs-dir", "runs2", "--quiet", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    ppl_pruned = json.loads(rec_path.read_text())["results"]["ppl"]["wiki"]["ppl"]
    assert f"ppl[wiki] {ppl_pruned:.3f}" in ev.stdout  # the reloaded checkpoint is the pruned model
    show = _cli("show", str(rec_path), cwd=tmp_path)
    assert "tiny-llama wanda" in show.stdout


@pytest.mark.parametrize("args,message", [
    (["--sparsity", "1.2"], "sparsity must be in [0, 1)"),
    (["--structure", "4:2"], "1 <= N < M"),
    (["--structure", "2:5"], "does not divide 64"),
    (["--structure", "two:four"], "valid: 'unstructured' or 'N:M'"),
    (["--nsamples", "0"], "nsamples must be a whole number >= 1"),
    (["--seqlen", "4096"], "above tiny-llama's limit of 1024"),
    (["--calib", "nowhere.txt"], "unknown text source 'nowhere.txt'"),
    (["--group", "diag"], "invalid choice"),
    (["--method", "obs"], "invalid choice"),
    (["--method", "sparsegpt", "--score", "ria"], "score 'ria' does not apply to method 'sparsegpt'"),
    (["--method", "sparsegpt", "--group", "layer"], "group 'layer' does not apply to method 'sparsegpt'"),
])
def test_cli_bad_input(tmp_path, monkeypatch, capsys, args, message):
    from wanda_core.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        code = main(["prune", "--model", "tiny-llama", "--quiet", "--runs-dir", "r", *args])
    except SystemExit as e:  # argparse's own errors (invalid choice) exit with 2
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*.json"))
