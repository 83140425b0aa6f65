"""The typed Profile: every key checked on load (an error names the key and what is valid), and
Profile.config builds the RunConfig the chapters run."""
import pytest

import yaml

from wanda_core.paths import repo_root
from wanda_core.runs.config import RunConfig
from wanda_core.study.profiles import load_profile

SHIPPED = sorted(p.stem for p in (repo_root() / "profiles").glob("*.yaml"))  # scale too: behind results/scale


def _write(tmp_path, text):
    p = tmp_path / "mine.yaml"
    p.write_text(text)
    return str(p)


def test_every_shipped_profile_is_tested():
    assert {"smoke", "default", "paper", "scale"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_and_build_valid_configs(name):
    P = load_profile(name)
    assert P.name == name
    written = yaml.safe_load((repo_root() / "profiles" / f"{name}.yaml").read_text()) or {}
    for key, value in written.items():  # every key of the file reaches the Profile unchanged
        got = getattr(P, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    cfg = P.config(method="sparsegpt", structure="2:4").validate()
    assert (cfg.model, cfg.nsamples, cfg.seqlen) == (P.model, P.nsamples, P.seqlen)


@pytest.mark.parametrize("text,words", [
    ("eval_window: 16\n", ["unknown key(s) eval_window", "did you mean eval_windows?", "valid keys: ", "nsamples"]),
    ("modle: tiny-llama\n", ["unknown key(s) modle", "did you mean model?"]),
    ("nsamples: '32'\n", ["nsamples = '32' is not int"]),
    ("seeds: 0\n", ["seeds = 0 is not a list of int"]),
    ("eval_windows: 2.5\n", ["eval_windows = 2.5 is not int or null"]),
    ("batch_size: true\n", ["batch_size = True is not int"]),
    ("nsamples: 0\n", ["nsamples must be >= 1, got 0"]),
    ("eval_windows: 0\n", ["eval_windows must be >= 1 or null"]),
    ("sparsities: [0.5, 1.2]\n", ["sparsities must lie in [0, 1)", "1.2"]),
    ("seeds: []\n", ["seeds must name at least one seed"]),
    ("dtype: float64\n", ["unknown dtype 'float64'; valid: float32, float16, bfloat16"]),
    ("device: tpu\n", ["unknown device 'tpu'; valid: cpu, cuda, cuda:N"]),
    ("- a list\n", ["expected a mapping"]),
    ("ladder_task_configs: [wanda 40%]\n", ["ladder_task_configs ['wanda 40%'] are not configurations", "wanda 2:4"]),
])
def test_bad_profiles_name_the_key(tmp_path, text, words):
    with pytest.raises(ValueError) as e:
        load_profile(_write(tmp_path, text))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_unknown_profile_name():
    with pytest.raises(ValueError, match="unknown profile 'smok'; valid: smoke, default, paper"):
        load_profile("smok")


def test_profile_config_builds_the_runconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_RUNS_DIR", str(tmp_path / "runs"))
    P = load_profile(_write(tmp_path, "model: tiny-llama\ncalib: wiki\neval: [wiki, extra.txt]\nnsamples: 8\n"
                                      "seqlen: 64\neval_windows: 4\nbatch_size: 2\ntask_limit: 10\ndtype: float32\n"))
    assert P.runs_dir == str(tmp_path / "runs" / "mine")
    cfg = P.config(method="magnitude", sparsity=0.7, nsamples=2)
    assert cfg == RunConfig(model="tiny-llama", method="magnitude", sparsity=0.7, calib="wiki", eval=("wiki", "extra.txt"),
                            nsamples=2, seqlen=64, eval_windows=4, batch_size=2, task_limit=10, dtype="float32")
    assert P.replace(nsamples=3).config().nsamples == 3
    with pytest.raises(ValueError, match="nsamples must be >= 1"):
        P.replace(nsamples=0)


def test_ladder_task_configs_choose_which_runs_get_zero_shot():
    from wanda_core.study.experiments import ladder

    P = load_profile("smoke")
    every = ladder.rung_configs(P, "tiny-llama")
    assert all(c.tasks == P.ladder_tasks for c in every)  # () = all seven
    some = ladder.rung_configs(P.replace(ladder_task_configs=("dense", "wanda 50%")), "tiny-llama")
    got = {(c.method, c.structure): c.tasks for c in some}
    assert got[("dense", "unstructured")] == got[("wanda", "unstructured")] == P.ladder_tasks
    assert got[("wanda", "2:4")] == got[("sparsegpt", "unstructured")] == ()
    # the same runs either way: records are shared, zero-shot is added to them
    from wanda_core.runs.records import record_id

    assert [record_id(a) for a in every] == [record_id(b) for b in some]
