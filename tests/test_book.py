"""Every chapter executes in the smoke profile and the book builds with warnings as errors."""
import ast
import json
import os
import subprocess
import sys

from wanda_core.report.bookbuild import notebooks, read_notebook


def test_every_notebook_has_a_parameters_cell_and_no_outputs():
    for nb in notebooks():
        cells = read_notebook(nb).cells
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), nb.name
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs"


def test_text_chapters_hold_no_definitions():
    """A chapter is prose and calls: functions, classes and lambdas live in wanda_core."""
    for nb in notebooks():
        if nb.suffix != ".md":
            continue
        for c in read_notebook(nb).cells:
            if c["cell_type"] == "code":
                found = [type(n).__name__ for n in ast.walk(ast.parse(c["source"]))
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
                assert not found, f"{nb.name} defines {found} in a cell: move it into wanda_core"


def test_book_builds_in_smoke_profile(tmp_path, monkeypatch):
    root = tmp_path / "book"
    env = dict(os.environ, WANDA_RUNS_DIR=str(tmp_path / "runs"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "wanda_core.report.bookbuild", "all", "--profile", "smoke", "--root", str(root)],
                       capture_output=True, text=True, env=env, timeout=1500)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    for nb in notebooks():
        page = html / "book" / "_generated" / f"{nb.stem}.html"
        assert page.is_file(), page
        executed = json.loads((root / "book" / "_generated" / f"{nb.stem}.ipynb").read_text())
        for c in executed["cells"]:
            for o in c.get("outputs", []):
                assert o.get("output_type") != "error", f"{nb.name}: {o.get('ename')}"
                text = "".join(o.get("text", "")) if isinstance(o.get("text"), (list, str)) else ""
                assert "Traceback" not in text, nb.name
    # the plan (wanda_core.cluster.plan) is what the book ran: the same records, and none of them missing
    from wanda_core.cluster.plan import make_plan
    from wanda_core.profiles import load_profile

    monkeypatch.setenv("WANDA_RUNS_DIR", str(tmp_path / "runs"))
    plan = make_plan(load_profile("smoke"))
    assert plan.missing() == [] and {j.id for j in plan.jobs} == {f.stem for f in (tmp_path / "runs" / "smoke").glob("*.json")}
