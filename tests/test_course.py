"""The course kit: the grading package on right and wrong answers, the student notebooks generated
from the solutions by their markers, the solution notebooks passing every check in the smoke
profile, and the generated blank student notebooks running to the end with actionable failures
and no traceback."""
import json
import re
from pathlib import Path

import pytest
import torch

from wanda_core.course import grading as G
from wanda_core.course import coursekit
from wanda_core.prune import masks, scores
from wanda_core.runs.config import RunConfig
from wanda_core.paths import repo_root
from wanda_core.prune.scores import LayerStats

ROOT = repo_root()
COURSE = ROOT / "course"
SOLUTIONS = COURSE / "solutions"
NOTEBOOKS = ["assignment1_scores_masks", "assignment2_prune_model", "assignment3_investigation"]
CHECKS = {  # the checks each solution notebook must pass
    "assignment1_scores_masks": {"by_hand", "magnitude_score", "wanda_score", "row_mask", "nm_mask"},
    "assignment2_prune_model": {"engine_score", "prune_records", "outlier_features", "pruned_fraction"},
    "assignment3_investigation": {"design", "figure", "writeup"},
}


# --- reference answers and typical mistakes ------------------------------------------------
def mag(W, stats):
    return W.abs()


def wan(W, stats):
    return W.abs() * stats.input_norm.reshape(1, -1)


def row(score, sparsity):
    return masks.unstructured_mask(score, sparsity, "row")


def nm(score, n, m):
    return masks.nm_mask(score, n, m)


def todo(*args):
    raise NotImplementedError


# --- (a) the grading module ------------------------------------------------------------------
def test_right_answers_pass_strict(capsys):
    G.check_by_hand([True, False, False, True], [False, True, True, False], strict=True)
    G.check_magnitude_score(mag, strict=True)
    G.check_wanda_score(wan, strict=True)
    G.check_row_mask(row, strict=True)
    G.check_nm_mask(nm, strict=True)
    G.check_engine_score(wan, strict=True)
    G.check_outlier_features(lambda v, f: torch.nonzero(v > f * v.median()).flatten(), strict=True)
    G.check_pruned_fraction(lambda m, f: m[:, f].float().mean().item(), strict=True)
    out = capsys.readouterr().out
    assert "FAIL" not in out and "all 5 cases passed" in out


def test_a_rescaled_wanda_score_is_accepted():
    r = G.check_wanda_score(lambda W, s: W.abs() * (s.input_sq_mean * s.tokens).sqrt(), strict=True)
    assert "same ranking" in r.cases[0].message


def test_wrong_mask_says_which_case_and_expected_versus_got(capsys):
    flipped = lambda s, p: ~masks.unstructured_mask(s, p, "row")  # noqa: E731
    r = G.check_row_mask(flipped)
    out = capsys.readouterr().out
    assert not r.passed and r.n_passed == 0
    assert "case 'row of 4, sparsity 0.5': expected mask [F,T,F,T], got [T,F,T,F]" in out
    assert "True must mean PRUNED" in out
    with pytest.raises(AssertionError, match=r"row_mask: 7 of 7 cases failed: case 'row of 4, sparsity 0.5': expected mask"):
        G.check_row_mask(flipped, strict=True)


@pytest.mark.parametrize("fn, hint", [
    (lambda s, p: masks.unstructured_mask(s, p, "layer"), "one threshold for the whole matrix"),
    (lambda s, p: masks.unstructured_mask(s, p, "row").float(), "expected torch.bool"),
])
def test_row_mask_mistakes_get_hints(fn, hint):
    r = G.check_row_mask(fn)
    assert not r.passed
    assert any(hint in c.hint or hint in c.message for c in r.failed)


@pytest.mark.parametrize("fn, hint", [
    (lambda W, s: W.abs(), "ignore the activations"),
    (lambda W, s: W.abs() * s.input_sq_mean, "square root"),
    (lambda W, s: W * s.input_norm, "use |W_ij|"),
    (lambda W, s: W.abs() * s.input_norm.reshape(-1, 1), "COLUMN of W"),
])
def test_wanda_score_mistakes_get_hints(fn, hint):
    r = G.check_wanda_score(fn)
    assert not r.passed and any(hint in c.hint for c in r.failed), [c.hint for c in r.failed]


def test_nm_mask_that_ignores_blocks_is_told_so():
    r = G.check_nm_mask(lambda s, n, m: masks.unstructured_mask(s, 1 - n / m, "row"))
    assert not r.passed and any("EVERY block" in c.hint for c in r.failed)


def test_unfilled_starter_is_not_attempted_and_never_raises(capsys):
    def wanda_score(W, stats):
        # YOUR CODE HERE
        raise NotImplementedError

    r = G.check_wanda_score(wanda_score)
    out = capsys.readouterr().out
    assert not r.passed and r.not_attempted
    assert out.strip() == ("wanda_score: not attempted yet -- NotImplementedError: fill in wanda_score first "
                           "(replace the `raise NotImplementedError` under # YOUR CODE HERE)")
    with pytest.raises(AssertionError, match="not attempted -- NotImplementedError: fill in wanda_score first"):
        G.check_wanda_score(wanda_score, strict=True)


def test_errors_in_student_code_are_one_line_with_the_line(capsys):
    def broken(W, stats):
        x = W.abs()
        return x * stats.norms  # noqa: the typo under test
    r = G.check_wanda_score(broken)
    out = capsys.readouterr().out
    assert "Traceback" not in out
    msg = r.cases[0].message
    assert "your wanda_score raised AttributeError" in msg and "of broken: `return x * stats.norms" in msg


def test_score_that_changes_w_in_place_fails():
    r = G.check_engine_score(lambda W, s: W.abs_())
    assert any(c.name == "leaves W unchanged" and not c.passed for c in r.cases)


def test_by_hand_gives_a_hint_not_the_answer():
    r = G.check_by_hand([False, True, False, True], None)
    assert not r.passed
    assert "prunes the wrong weights" in r.cases[0].message and "|W_j|" in r.cases[0].hint
    assert "fill in wanda_mask" in r.cases[1].message


def test_attempt_prints_instead_of_raising(capsys):
    def outer():
        return inner()

    def inner():
        raise NotImplementedError

    assert G.attempt(outer) is None
    assert G.attempt(lambda: 1 / 0, name="prune_with") is None
    assert G.attempt(lambda x: x + 1, 1) == 2
    out = capsys.readouterr().out
    assert "fill in inner first" in out and "your prune_with raised ZeroDivisionError" in out


def _record(structure, ppl, custom=True, sparsity=0.5):
    return {"config": {"structure": structure}, "prune_fields": {"score": "wanda"},
            "custom_score": {"name": "student_score", "source_sha": "x"} if custom else None,
            "prune": {"sparsity": {"overall": sparsity}}, "results": {"ppl": {"wiki": {"ppl": ppl}}}}


def test_unforeseen_answers_get_a_verdict_not_a_traceback(capsys):
    assert not G.check_pruned_fraction(lambda m, f: "half").passed
    assert not G.check_pruned_fraction(lambda m, f: 0.3).passed       # wrong in no foreseen way
    lib = {"unstructured": _record("unstructured", 30.0, custom=False)}
    r = G.check_prune_records({"unstructured": {"results": {}}, "2:4": {}}, lib)
    assert not r.passed and "could not check this answer: KeyError" in r.cases[0].message
    assert not G.check_writeup(12345).passed and not G.check_figure("a figure").passed
    assert "Traceback" not in capsys.readouterr().out


def test_prune_records():
    lib = {"unstructured": _record("unstructured", 30.0, custom=False)}
    good = {"unstructured": _record("unstructured", 30.1), "2:4": _record("2:4", 90.0)}
    assert G.check_prune_records(good, lib, strict=True)
    bad = {"unstructured": _record("unstructured", 45.0, custom=False), "2:4": _record("unstructured", 90.0, sparsity=0.3)}
    r = G.check_prune_records(bad, lib)
    failed = {c.name for c in r.failed}
    assert failed == {"unstructured: made with your score", "unstructured: perplexity matches wanda_core's Wanda",
                      "2:4: structure", "2:4: sparsity"}
    assert G.check_prune_records({}, lib).not_attempted


def test_design(tmp_path):
    es_c, es_t = tmp_path / "es_calib.txt", tmp_path / "es_test.txt"
    es_c.write_text("hola " * 100)
    es_t.write_text("adios " * 100)
    ev = ("wiki", str(es_t))
    good = [RunConfig(method="dense", eval=ev)] + [RunConfig(method="wanda", sparsity=0.6, calib=c, eval=ev)
                                                   for c in ("wiki", str(es_c))]
    assert G.check_design(good, strict=True)
    leaky = [RunConfig(method="wanda", sparsity=0.6, calib=c, eval=("wiki", str(es_c)), nsamples=n)
             for c, n in (("wiki", 8), (str(es_c), 16))]
    r = G.check_design(leaky)
    failed = {c.name: c.message for c in r.failed}
    assert "nsamples (16, 8)" in failed["only the calibration source varies"]
    assert set(failed) == {"only the calibration source varies", "a dense baseline",
                           "no text used both to calibrate and to evaluate"}
    assert G.check_design(None).not_attempted
    assert not G.check_design("wiki").passed


def test_figure_and_writeup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar(["en", "es"], [20.0, 40.0])
    r = G.check_figure(fig)
    assert {c.name for c in r.failed} == {"axes are labelled", "has a title"}
    ax.set_ylabel("perplexity")
    ax.set_title("calibration")
    assert G.check_figure(fig, strict=True)
    plt.close(fig)
    assert G.check_writeup("YOUR ANSWER HERE").not_attempted
    r = G.check_writeup("short text 12.5")
    assert {c.name for c in r.failed} == {"length 150-250 words", "cites numbers from your results"}
    assert G.check_writeup("word " * 190 + "at 12.5 against 14.2", strict=True)


def test_grading_log_and_summary(tmp_path, monkeypatch, capsys):
    log = tmp_path / "g.jsonl"
    monkeypatch.setenv("WANDA_GRADING_LOG", str(log))
    G.reset()
    G.check_magnitude_score(mag)
    G.check_wanda_score(todo)
    s = G.summary()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["check"] for x in lines] == ["magnitude_score", "wanda_score", "summary"]
    assert lines[0]["passed"] and not lines[1]["passed"] and lines[1]["not_attempted"]
    assert s == {"passed": 1, "total": 2, "checks": {"magnitude_score": True, "wanda_score": False}}
    assert "Checks passed: 1 of 2" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="1 of 2 checks failing: wanda_score"):
        G.summary(strict=True)


# --- (b) student versions generated from the solutions ---------------------------------------
def test_student_version_replaces_only_the_marked_lines():
    before = "---\nheader: x\n---\n\n# Title\n\n```{code-cell} ipython3\ndef f(x):\n    \"\"\"Doc.\"\"\"\n"
    middle = "\n\ny = 1  # kept\n```\n\nSome prose.\n"
    after = "\nMore prose.\n"
    text = (before
            + "    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n"
            + middle
            + "% BEGIN SOLUTION\n*Model answer:* 42.\n% STUDENT VERSION\n% *Your answer:* YOUR ANSWER HERE\n%\n% END SOLUTION\n"
            + "% BEGIN SOLUTION\nA note for instructors.\n% END SOLUTION\n"
            + after)
    student = coursekit.student_version(text)
    assert student == (before
                       + "    # YOUR CODE HERE\n    raise NotImplementedError\n"
                       + middle
                       + "*Your answer:* YOUR ANSWER HERE\n\n"
                       + after)
    assert "return x + 1" not in student and "42" not in student and "instructors" not in student
    assert coursekit.student_version(before + middle) == before + middle  # no markers: unchanged


@pytest.mark.parametrize("text, error", [
    ("# BEGIN SOLUTION\nx = 1\n", "BEGIN SOLUTION at line 1 is never closed"),
    ("x = 1\n# END SOLUTION\n", "line 2: END SOLUTION without a BEGIN SOLUTION"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "line 2: BEGIN SOLUTION inside the block opened at line 1"),
    ("    # BEGIN SOLUTION\n    x = 1\n# END SOLUTION\n", "line 3: END SOLUTION is not aligned"),
    ("# BEGIN SOLUTION\nx = 1\n# STUDENT VERSION\nx = None\n# END SOLUTION\n", "line 4: a STUDENT VERSION line must start with '# '"),
])
def test_student_version_refuses_broken_markers(text, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        coursekit.student_version(text)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The student notebooks and the solutions as .ipynb, written by the command the book uses."""
    dest = tmp_path_factory.mktemp("course-notebooks")
    coursekit.main([str(dest), "--solutions"])
    return dest


def test_solutions_are_text_and_no_student_notebook_is_kept():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "course"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = set(tracked.stdout.split())
    assert files == {"course/instructors.md", "course/extending.md"} | {f"course/solutions/{n}.md" for n in NOTEBOOKS}
    for name in NOTEBOOKS:
        assert (SOLUTIONS / f"{name}.md").read_text().startswith(
            "---\njupytext:\n  text_representation: {extension: .md, format_name: myst}\n")


def test_generated_notebooks_are_clean_and_paired(generated):
    import nbformat

    assert sorted(p.stem for p in generated.glob("*.ipynb")) == NOTEBOOKS
    for name in NOTEBOOKS:
        student = nbformat.read(generated / f"{name}.ipynb", as_version=4)
        solution = nbformat.read(generated / "solutions" / f"{name}.ipynb", as_version=4)
        for nb in (student, solution):
            nbformat.validate(nb)
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs saved"
            params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
            assert len(params) == 1 and 'profile = "default"' in params[0].source
        text = "\n".join(c.source for c in student.cells)
        assert "SOLUTION" not in text and "STUDENT VERSION" not in text and "Model answer" not in text, name
        starters = [c.source for c in student.cells if c.cell_type == "code" and "# YOUR CODE HERE" in c.source]
        assert starters, name
        assert all("raise NotImplementedError" in s for s in starters if "def " in s)
        # the same notebook apart from the solution blocks: cell for cell, the same kinds and tags
        assert [(c.cell_type, c.metadata.get("tags")) for c in student.cells] == \
            [(c.cell_type, c.metadata.get("tags")) for c in solution.cells]


# --- (c) the notebooks, executed in the smoke profile -----------------------------------------
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+", re.M)


def _execute(notebook, tmp_path, runs_dir, monkeypatch):
    import nbformat
    import papermill as pm

    name = notebook.stem
    log = tmp_path / f"{name}.grading.jsonl"
    monkeypatch.setenv("WANDA_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("WANDA_GRADING_LOG", str(log))
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(notebook), str(out), parameters={"profile": "smoke"},
                        cwd=str(COURSE), kernel_name="python3", progress_bar=False, log_output=False)
    nb = nbformat.read(out, as_version=4)
    texts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", f"{name}: a cell raised {o.get('ename')}: {o.get('evalue')}"
            texts.append(o.get("text", "") if o.output_type == "stream" else str(o.get("data", {}).get("text/plain", "")))
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    return lines, "\n".join(texts)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("course-runs")  # shared: the student notebooks reuse the baselines


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solution_notebook_passes_every_check(name, generated, tmp_path, runs_dir, monkeypatch):
    lines, _ = _execute(generated / "solutions" / f"{name}.ipynb", tmp_path, runs_dir, monkeypatch)
    checks = {x["check"]: x for x in lines if x["check"] != "summary"}
    assert set(checks) == CHECKS[name]
    failing = {k: v["messages"] for k, v in checks.items() if not v["passed"]}
    assert not failing, failing
    summary = [x for x in lines if x["check"] == "summary"][-1]
    assert summary["passed"] == summary["total"] == len(CHECKS[name])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_blank_student_notebook_runs_and_says_what_to_do(name, generated, tmp_path, runs_dir, monkeypatch):
    lines, text = _execute(generated / f"{name}.ipynb", tmp_path, runs_dir, monkeypatch)
    checks = {x["check"]: x for x in lines if x["check"] != "summary"}
    assert set(checks) == CHECKS[name]
    for check, x in checks.items():
        assert not x["passed"], check
        assert x["messages"] and all(re.search(r"fill in|write your findings", m) for m in x["messages"]), x
    assert not _TRACEBACK.search(text), _TRACEBACK.search(text).group(0)
    assert "not attempted yet" in text and "Checks passed: 0 of" in text
