"""Every chapter executes in the smoke profile and the book builds with warnings as errors."""
import json
import os
import subprocess
import sys

from wanda_core.bookbuild import notebooks


def test_every_notebook_has_a_parameters_cell_and_no_outputs():
    for nb in notebooks():
        cells = json.loads(nb.read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), nb.name
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs"


def test_book_builds_in_smoke_profile(tmp_path):
    root = tmp_path / "book"
    env = dict(os.environ, WANDA_RUNS_DIR=str(tmp_path / "runs"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "wanda_core.bookbuild", "all", "--profile", "smoke", "--root", str(root)],
                       capture_output=True, text=True, env=env, timeout=1500)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    for nb in notebooks():
        page = html / "book" / "_generated" / f"{nb.stem}.html"
        assert page.is_file(), page
        executed = json.loads((root / "book" / "_generated" / nb.name).read_text())
        for c in executed["cells"]:
            for o in c.get("outputs", []):
                assert o.get("output_type") != "error", f"{nb.name}: {o.get('ename')}"
                text = "".join(o.get("text", "")) if isinstance(o.get("text"), (list, str)) else ""
                assert "Traceback" not in text, nb.name
