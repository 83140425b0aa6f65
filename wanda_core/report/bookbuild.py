"""Build the book: execute each notebook with papermill for a profile, then render with Jupyter Book.

    python -m wanda_core.report.bookbuild all --profile default     # every chapter, then the HTML
    python -m wanda_core.report.bookbuild run 02_unstructured       # one chapter
    python -m wanda_core.report.bookbuild html                      # render what was executed
    python -m wanda_core.report.bookbuild all --profile smoke --root /tmp/book   # a throw-away copy

Chapters live in notebooks/ as MyST markdown notebooks (NN_name.md, read with jupytext) or, during
the transition, as .ipynb without outputs; executed copies (.ipynb) go to <root>/book/_generated/,
which _toc.yml lists. The notebooks hold no pruning logic: they call
wanda_core, and the run records under runs/<profile>/ make a second build quick.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from wanda_core.course import coursekit
from wanda_core.study.profiles import load_profile
from wanda_core.paths import repo_root

log = logging.getLogger("wanda_core.report.bookbuild")

SOURCE_DIRS = ("notebooks",)  # executed; course/ notebooks are rendered as handed out (unexecuted)
BOOK_FILES = ("_config.yml", "_toc.yml", "book", "course", "data", "results", "references.bib")


def notebooks(root: Path | None = None) -> list[Path]:
    """The chapters, in order: NN_name.md (jupytext MyST) or NN_name.ipynb; .md wins if both exist."""
    root = root or repo_root()
    found: dict[str, Path] = {}
    for d in SOURCE_DIRS:
        for p in sorted((root / d).glob("*.ipynb")) + sorted((root / d).glob("*.md")):
            if not p.name.startswith(("_", ".")) and p.stem[:1].isdigit():
                found[p.stem] = p
    return [found[k] for k in sorted(found)]


def read_notebook(path: Path):
    """A chapter as an nbformat notebook, whether it is stored as .ipynb or as MyST markdown."""
    import jupytext
    import nbformat

    return jupytext.read(path) if path.suffix == ".md" else nbformat.read(path, as_version=4)


def find_notebook(name: str, root: Path | None = None) -> Path:
    for p in notebooks(root):
        if name in (p.stem, p.name, *p.stem.split("_", 1)) or str(p).endswith(name):  # "04_zeroshot", "zeroshot" or "04"
            return p
    raise ValueError(f"no notebook {name!r}; valid: {', '.join(p.stem for p in notebooks(root))}")


def execute(nb: Path, profile: str, out_dir: Path, extra: dict | None = None) -> Path:
    """Run one notebook with papermill; the executed copy replaces the old one only on success."""
    import nbformat
    import papermill as pm

    load_profile(profile)  # a bad profile name fails here, before a kernel starts
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{nb.stem}.ipynb"
    tmp = out_dir / f".{nb.stem}.running.ipynb"
    src = nb
    if nb.suffix == ".md":  # papermill reads .ipynb: convert the text chapter first
        src = out_dir / f".{nb.stem}.source.ipynb"
        book = read_notebook(nb)
        book.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nbformat.write(book, src)
    t = time.time()
    log.info("executing %s (profile %s)", nb.name, profile)
    env_before = os.environ.get("WANDA_PROFILE")
    os.environ["WANDA_PROFILE"] = profile
    try:
        pm.execute_notebook(str(src), str(tmp), parameters={"profile": profile, **(extra or {})},
                            cwd=str(repo_root()), kernel_name="python3", progress_bar=False,
                            log_output=False, request_save_on_cell_execute=False)
    finally:
        if src != nb:
            src.unlink(missing_ok=True)
        if env_before is None:
            os.environ.pop("WANDA_PROFILE", None)
        else:
            os.environ["WANDA_PROFILE"] = env_before
    book = nbformat.read(tmp, as_version=4)
    for cell in book.cells:  # readers see how the page was made in a folded box, not code
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            if "hide-cell" not in tags:
                tags.append("hide-cell")
    nbformat.write(book, tmp)
    os.replace(tmp, out)
    log.info("executed %s in %.0f s", nb.name, time.time() - t)
    return out


def html(root: Path, strict: bool = True) -> Path:
    """Render <root> with Jupyter Book (warnings are errors)."""
    exe = Path(sys.executable).with_name("jupyter-book")  # jupyter_book 1.x has no __main__
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--path-output", str(root)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-8000:] + proc.stderr[-8000:])
        raise SystemExit(f"jupyter-book build failed (exit {proc.returncode})")
    return root / "_build" / "html"


def copy_book_sources(dest: Path) -> None:
    """The book's non-notebook sources into `dest` (for a throw-away build in tests)."""
    src = repo_root()
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        p = src / name
        if p.is_dir():
            skip = ["_generated", "_build", "__pycache__", "solutions"] + (["*.ipynb"] if name != "course" else [])
            shutil.copytree(p, dest / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*skip))
        elif p.is_file():
            shutil.copy2(p, dest / name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m wanda_core.report.bookbuild", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["all", "run", "html", "list"], help="what to do")
    ap.add_argument("names", nargs="*", help="notebooks to run (for `run`), by name or number prefix")
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "default"), help="smoke, default or paper")
    ap.add_argument("--root", default=None, help="build into this directory instead of the checkout")
    ap.add_argument("--no-strict", action="store_true", help="do not treat build warnings as errors")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # our own line per notebook is enough
    root = Path(a.root).resolve() if a.root else repo_root()
    if root != repo_root():
        copy_book_sources(root)
    out_dir = root / "book" / "_generated"
    if a.action == "list":
        print("\n".join(p.stem for p in notebooks()))
        return
    if a.action in ("all", "run"):
        todo = notebooks() if a.action == "all" else [find_notebook(n) for n in a.names]
        if a.action == "run" and not todo:
            ap.error("name the notebooks to run, e.g. `run 02_unstructured`")
        t0 = time.time()
        for nb in todo:
            execute(nb, a.profile, out_dir)
        log.info("executed %d notebooks in %.0f s", len(todo), time.time() - t0)
    if a.action in ("all", "html"):
        coursekit.write_student_versions(root / "course")  # the course part shows the generated student notebooks
        out = html(root, strict=not a.no_strict)
        log.info("book: %s", out / "index.html")


if __name__ == "__main__":
    main()
