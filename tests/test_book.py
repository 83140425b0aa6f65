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


# what a chapter's code may not hold: it is prose, one call for the data and calls that show it
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
LOGIC = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.comprehension, ast.Match, ast.Try)
FILTER_METHODS = {"query", "loc", "where", "mask", "dropna", "style"}  # row selection and table styling
BOOLEAN_SLICE = (ast.Compare, ast.BoolOp)


def is_boolean_filter(node: ast.AST) -> bool:
    """`df[df["x"] == v]`, `df[(a) | (b)]`, `df[~m]`, `df[df["x"].isin(...)]`: a subscript selecting rows by a condition."""
    if not isinstance(node, ast.Subscript):
        return False
    for n in ast.walk(node.slice):
        if isinstance(n, BOOLEAN_SLICE) or (isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.Not, ast.Invert))):
            return True
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.BitAnd, ast.BitOr, ast.BitXor)):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in {"isin", "between", "notna", "isna"}:
            return True
    return False


def logic_in(source: str) -> list[tuple[int, str]]:
    """(line in the cell, what) for each definition, branch, loop or inline filter in a cell's code."""
    found = []
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, DEFINITIONS + LOGIC):
            found.append((getattr(n, "lineno", None), type(n).__name__))
        elif is_boolean_filter(n):
            found.append((n.lineno, "boolean filter " + ast.unparse(n)[:60]))
        elif isinstance(n, ast.Attribute) and n.attr in FILTER_METHODS:
            found.append((n.lineno, f".{n.attr}"))
    return found


def test_logic_in_finds_what_a_chapter_may_not_hold():
    """The checker itself: each forbidden form is found, plain calls and captions are not."""
    bad = {"if x:\n    f()": "If", "f(a if b else c)": "IfExp", "for s in xs:\n    f(s)": "For", "while x:\n    f()": "While",
           "f([g(s) for s in xs])": "comprehension", "def f():\n    pass": "FunctionDef", "f(lambda x: x)": "Lambda",
           "f(df[df['m'] != 'dense'])": "boolean filter", "f(df[(a == 1) | (b == 2)])": "boolean filter",
           "f(df[~df['m'].isin(['x'])])": "boolean filter", "df.query('m == 1')": ".query", "df.loc[df.m == 1, 'x']": ".loc",
           "t.style.hide(axis='index')": ".style", "df.dropna(subset=['x'])": ".dropna"}
    for src, what in bad.items():
        assert any(w.startswith(what) for _, w in logic_in(src)), src
    ok = "P = present.setup(profile)\nt = tables.table3(P)\npresent.show(present.table(t, ['a'], caption=f'{len(t)} runs'))\n" \
         "x = out['summary']\ny = t['device'].iloc[0]\npresent.md(report.tables.table3(t))"
    assert logic_in(ok) == []


def test_text_chapters_hold_no_logic():
    """A chapter is prose and calls: functions, classes and lambdas, branches, loops and inline
    filtering or styling of frames live in wanda_core (the report layer)."""
    problems = []
    for nb in notebooks():
        if nb.suffix != ".md":
            continue
        text = nb.read_text()
        at = 0
        for c in read_notebook(nb).cells:
            if c["cell_type"] != "code":
                continue
            start = text.find(c["source"], at)  # the cell's first line in the .md file
            at = max(start, at)
            first = text[:start].count("\n") + 1 if start >= 0 else None
            for line, what in logic_in(c["source"]):
                where = f"line {first + line - 1}" if first and line else "a code cell"
                problems.append(f"{nb.name}, {where}: {what}")
    assert not problems, "chapters hold logic; move it into wanda_core.report:\n" + "\n".join(problems)


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
    from wanda_core.study.profiles import load_profile

    monkeypatch.setenv("WANDA_RUNS_DIR", str(tmp_path / "runs"))
    plan = make_plan(load_profile("smoke"))
    assert plan.missing() == [] and {j.id for j in plan.jobs} == {f.stem for f in (tmp_path / "runs" / "smoke").glob("*.json")}
