"""Run records: a JSON file per prune or evaluation, written atomically and reused on rerun.

Every number the book prints comes from one of these records. A record says how it was made
(configuration, its hash, package versions, device, date), so a reader can trace a table cell
back to a command. Writing goes through a temporary file and `os.replace`, so an interrupted run
never leaves a half-written record, and a rerun with the same configuration finds the finished
one and reuses it.

    from wanda_core.records import atomic_write_json, read_json, provenance, config_hash
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

# Bump when the record layout or what a configuration computes changes, so old records are not reused.
# 2: one perplexity per dataset (results.ppl, measured with the run's seqlen and eval_windows; the
#    results.ppl_all table that kept two window counts is gone), and the paper's magnitude baseline
#    follows the official rule (every |W| <= the layer's threshold is pruned; prune_fields.mask_rule).
RECORD_VERSION = 2


def config_hash(fields: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able dict (key order does not matter)."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as JSON to `path` so readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:  # a full disk names no file: name the record
            e.filename = str(path)
        raise
    return path


def read_json(path: str | os.PathLike) -> Any | None:
    """The parsed JSON at `path`, or None if it is missing or unreadable (treated as not done)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):  # ValueError: not JSON, or not even text (garbage bytes)
        return None


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(device: str | None = None) -> dict[str, Any]:
    """Versions, device and date, for the record's `provenance` field."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev: dict[str, Any] = {"type": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        dev["name"] = torch.cuda.get_device_name(idx)
        dev["cuda"] = torch.version.cuda
        dev["capability"] = ".".join(map(str, torch.cuda.get_device_capability(idx)))
    else:
        dev["name"] = platform.processor() or platform.machine()
        dev["threads"] = torch.get_num_threads()
        dev["cpus"] = os.cpu_count()
        if hasattr(os, "getloadavg"):  # 1/5/15-minute load: above the cores, timings shared the machine
            dev["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": dev,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: _version(p)
            for p in ("torch", "transformers", "lm_eval", "wanda_core", "numpy", "gguf", "accelerate")
        },
        "record_version": RECORD_VERSION,
    }
