"""The course kit: the grading module on right and wrong answers, the solution notebooks passing
every check in the smoke profile, and the blank student notebooks running to the end with
actionable failures and no traceback."""
import json
import re
from pathlib import Path

import pytest
import torch

from wanda_core import grading as G
from wanda_core import masks, scores
from wanda_core.config import RunConfig
from wanda_core.profiles import repo_root
from wanda_core.scores import LayerStats

ROOT = repo_root()
COURSE = ROOT / "course"
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


# --- (b), (c) the notebooks, executed in the smoke profile ------------------------------------
def test_notebooks_are_clean_and_paired():
    import nbformat

    for name in NOTEBOOKS:
        student = nbformat.read(COURSE / f"{name}.ipynb", as_version=4)
        solution = nbformat.read(COURSE / "solutions" / f"{name}.ipynb", as_version=4)
        for nb in (student, solution):
            nbformat.validate(nb)
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs saved"
            params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
            assert len(params) == 1 and 'profile = "default"' in params[0].source
        starters = [c.source for c in student.cells if c.cell_type == "code" and "# YOUR CODE HERE" in c.source]
        assert starters, name
        assert not any("# YOUR CODE HERE" in c.source for c in solution.cells if c.cell_type == "code"), name
        assert all("raise NotImplementedError" in s for s in starters if "def " in s)


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+", re.M)


def _execute(name, folder, tmp_path, runs_dir, monkeypatch):
    import nbformat
    import papermill as pm

    log = tmp_path / f"{name}.grading.jsonl"
    monkeypatch.setenv("WANDA_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("WANDA_GRADING_LOG", str(log))
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(folder / f"{name}.ipynb"), str(out), parameters={"profile": "smoke"},
                        cwd=str(folder), kernel_name="python3", progress_bar=False, log_output=False)
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
def test_solution_notebook_passes_every_check(name, tmp_path, runs_dir, monkeypatch):
    lines, _ = _execute(name, COURSE / "solutions", tmp_path, runs_dir, monkeypatch)
    checks = {x["check"]: x for x in lines if x["check"] != "summary"}
    assert set(checks) == CHECKS[name]
    failing = {k: v["messages"] for k, v in checks.items() if not v["passed"]}
    assert not failing, failing
    summary = [x for x in lines if x["check"] == "summary"][-1]
    assert summary["passed"] == summary["total"] == len(CHECKS[name])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_blank_student_notebook_runs_and_says_what_to_do(name, tmp_path, runs_dir, monkeypatch):
    lines, text = _execute(name, COURSE, tmp_path, runs_dir, monkeypatch)
    checks = {x["check"]: x for x in lines if x["check"] != "summary"}
    assert set(checks) == CHECKS[name]
    for check, x in checks.items():
        assert not x["passed"], check
        assert x["messages"] and all(re.search(r"fill in|write your findings", m) for m in x["messages"]), x
    assert not _TRACEBACK.search(text), _TRACEBACK.search(text).group(0)
    assert "not attempted yet" in text and "Checks passed: 0 of" in text
