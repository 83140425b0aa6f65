"""Screenshot the built book's pages with headless Chromium, to look at the rendered book quickly.

    python benchmarks/screenshots.py                        # every page under _build/html
    python benchmarks/screenshots.py index.html _generated  # pages whose path contains these
    python benchmarks/screenshots.py --build /tmp/book/_build/html --out /tmp/shots

Writes one PNG per page into screenshots/ (gitignored), named after the page's path. Needs
Debian's `chromium` (apt-get install -y chromium) or a Chrome/Chromium named by $CHROMIUM. Each
page gets a fresh, throw-away browser profile and no network features (no updates, sync or QUIC).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-dev-shm-usage"]


def find_chromium() -> str | None:
    """$CHROMIUM, else the first Chromium/Chrome on the PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    for c in CANDIDATES:
        path = shutil.which(c)
        if path:
            return path
    return None


def pages(build: Path, wanted: list[str]) -> list[Path]:
    """The HTML pages of a build, without Sphinx's asset folders (_static, _sources, ...)."""
    found = sorted(p for p in build.rglob("*.html")
                   if not any(part.startswith("_") and part != "_generated" for part in p.relative_to(build).parts[:-1]))
    if not wanted:
        return found
    out = []
    for w in wanted:
        direct = Path(w)
        if direct.is_file() and direct.suffix == ".html":
            out.append(direct.resolve())
            continue
        hits = [p for p in found if w in str(p.relative_to(build))]
        if not hits:
            raise SystemExit(f"no page under {build} matches {w!r}; pages: "
                             + ", ".join(str(p.relative_to(build)) for p in found[:12]) + (" ..." if len(found) > 12 else ""))
        out += hits
    return list(dict.fromkeys(out))


def shot_name(page: Path, build: Path) -> str:
    try:
        rel = page.relative_to(build)
    except ValueError:
        rel = Path(page.name)
    return "__".join(rel.with_suffix("").parts) + ".png"


def screenshot(chromium: str, page: Path, out: Path, width: int, height: int, timeout: float, wait_ms: int) -> str | None:
    """Take one screenshot; None on success, else a short reason."""
    with tempfile.TemporaryDirectory(prefix="wanda-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", page.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
    if not out.is_file() or out.stat().st_size == 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return f"no screenshot (exit {proc.returncode}): {err[-1] if err else 'no output'}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", nargs="*", help="pages to take: paths to .html files, or parts of their path under --build")
    ap.add_argument("--build", type=Path, default=ROOT / "_build" / "html", help="the built HTML book (default: _build/html)")
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where the PNGs go (default: screenshots/)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per page before giving up")
    ap.add_argument("--wait-ms", type=int, default=3000, help="virtual time for scripts (MathJax) before the shot")
    a = ap.parse_args(argv)

    chromium = find_chromium()
    if chromium is None:
        print("screenshots: Chromium is not installed. On Debian/Ubuntu: `apt-get install -y chromium` "
              "(as root), or point $CHROMIUM at a Chrome/Chromium binary.", file=sys.stderr)
        return 2
    build = a.build.resolve()
    if not a.pages and not build.is_dir():
        print(f"screenshots: no built book at {build}; run `make book` first (or pass --build).", file=sys.stderr)
        return 2
    todo = pages(build, a.pages)
    if not todo:
        print(f"screenshots: no .html pages under {build}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    t0 = time.time()
    for page in todo:
        out = a.out / shot_name(page, build)
        if out.exists():
            out.unlink()
        why = screenshot(chromium, page, out, a.width, a.height, a.timeout, a.wait_ms)
        if why:
            failed += 1
            print(f"FAILED {page}: {why}", file=sys.stderr)
        else:
            print(f"{out}")
    print(f"screenshots: {len(todo) - failed} of {len(todo)} pages in {time.time() - t0:.0f} s -> {a.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
