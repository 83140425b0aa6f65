"""The experiments layer on the smoke profile: each function returns the rows and columns a chapter
reads, and functions that share configurations share records (same ids, nothing redone)."""
import math

import pytest

from wanda_core.study.experiments import ablations, claims, outliers, sweeps, tables
from wanda_core.study.paper import numbers
from wanda_core.study.profiles import load_profile

COLUMNS = {"method", "structure", "sparsity", "actual_sparsity", "ppl", "ppl_ratio", "eval_windows", "id", "model", "device"}


@pytest.fixture(scope="module")
def P(tmp_path_factory):
    import os

    os.environ["WANDA_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    try:  # a smaller sweep than the smoke profile's: the sharing of records is what is tested
        return load_profile("smoke").replace(sparsities=(0.5,), seeds=(0,), calib_sizes=(1, 4))
    finally:
        os.environ.pop("WANDA_RUNS_DIR")


@pytest.fixture(scope="module")
def t3(P):
    return tables.table3(P)


def ids(df, **sel):
    for k, v in sel.items():
        df = df[df[k] == v]
    return set(df["id"])


def test_table3_rows_and_columns(t3):
    assert list(t3["method"]) == ["dense", "magnitude", "sparsegpt", "wanda"]
    assert COLUMNS <= set(t3.columns)
    assert t3.loc[t3["method"] == "dense", "ppl_ratio"].item() == 1.0
    exact = t3[t3["method"].isin(["wanda", "sparsegpt"])]["actual_sparsity"]
    assert (exact - 0.5).abs().max() < 1e-6  # exact counts per group
    mag = t3.loc[t3["method"] == "magnitude", "actual_sparsity"].item()
    assert 0.5 < mag < 0.501  # the official rule also prunes the threshold weight and its ties
    assert t3["ppl"].map(math.isfinite).all() and t3["eval_windows"].nunique() == 1


def test_runs_are_shared_between_functions(P, t3):
    nm = tables.nm_table(P)
    assert len(nm) == 10 and set(nm["structure"]) == {"-", "unstructured", "4:8", "2:4"}
    assert set(t3["id"]) <= set(nm["id"])
    assert set(tables.table3(P)["id"]) == set(t3["id"])              # asking again finds the same records
    sw = sweeps.sparsity_sweep(P)
    assert ids(sw, sparsity=0.5) | ids(sw, method="dense") == set(t3["id"])
    cal = sweeps.calibration_sweep(P)
    assert len(cal) == 1 + 2 * 2 * 1                                  # dense + 2 methods x 2 sizes x 1 seed
    assert ids(cal, nsamples=P.nsamples) == ids(t3, method="wanda") | ids(t3, method="sparsegpt")
    cg = ablations.comparison_group(P)
    assert set(cg.loc[cg["published"], "id"]) == ids(t3, method="magnitude") | ids(t3, method="wanda")
    assert len(cg) == 7


def test_sweep_summaries(P):
    sw = sweeps.sparsity_sweep(P)
    bd = sweeps.breakdown(sw)
    assert set(bd["method"]) == {"magnitude", "sparsegpt", "wanda"} and {"above_2x", "above_10x", "ppl_at_top"} <= set(bd.columns)
    spread = sweeps.seed_spread(sweeps.calibration_sweep(P))
    assert len(spread) == 4 and (spread["std"] == 0).all() and (spread["seeds"] == 1).all()   # one seed: no spread


def test_group_steps_split_the_total(P):
    steps = ablations.group_steps(ablations.comparison_group(P))
    total = steps["total"].iloc[0]
    assert ((steps["group_step"] + steps["score_step"]) - total).abs().max() < 1e-9


def test_weight_update_reuses_table3_and_marks_sparsegpt(P, t3):
    wu = ablations.weight_update(P)
    assert ids(wu, weight_update="none") - ids(wu, method="dense") <= set(tables.nm_table(P)["id"])
    assert set(wu.loc[wu["method"] == "sparsegpt", "weight_update"]) == {"own"}
    assert wu.loc[wu["weight_update"] == "sequential", "change"].notna().all()


def test_claims_on_real_frames(P, t3):
    c = claims.claims({"nm": tables.nm_table(P), "sweep": sweeps.sparsity_sweep(P)}, numbers())
    assert len(c) == 10 and c["key"].is_unique
    assert set(c["verdict"]) <= {"yes", "no", "not measured", "n/a: the paper's numbers do not show it"}
    assert c.set_index("key").loc["calib1", "verdict"] == "not measured"   # no calibration sweep passed


def test_toy_example_by_hand():
    w, err = outliers.toy_example()
    assert list(w["magnitude"]) == ["kept", "kept", "pruned", "pruned"]   # drops |2| and |-1|
    assert list(w["wanda"]) == ["pruned", "kept", "kept", "pruned"]       # drops 4*1 and 1*1, keeps 2*8
    e = err.set_index("method")["error"]
    assert e["magnitude"] == pytest.approx(math.sqrt(16**2 + 1), rel=1e-5)   # orthogonal inputs: root of summed squares
    assert e["wanda"] == pytest.approx(math.sqrt(4**2 + 1), rel=1e-5)


def test_activation_norms_and_mask_effect(P):
    norms = outliers.activation_norms(P)
    assert {"layer", "block", "channel", "norm", "picked", "tokens"} <= set(norms.columns)
    assert (norms["tokens"] == P.nsamples * P.seqlen).all() and (norms["norm"] >= 0).all()
    eff = outliers.mask_effect(P, norms)
    assert len(eff) == norms.loc[norms["picked"], "layer"].nunique()
    assert eff[["disagree", "magnitude_top", "wanda_top"]].stack().between(0, 1).all()


def test_pruning_time_rows_carry_their_own_methods_times(P, t3):
    """Chapter 9's table reuses Table 3's records; each row's times are that method's record's."""
    from wanda_core.study.experiments.timing import pruning_time

    cpu = pruning_time(P)["cpu"].set_index("method")
    for m, s, total in zip(t3["method"], t3["score_mask_s"], t3["prune_s"]):
        if m != "dense":
            assert (cpu.at[m, "score_mask"], cpu.at[m, "total"]) == (s, total), m
