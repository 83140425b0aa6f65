"""The claims engine of the reproduction notes (wanda_core.study.experiments.claims) on synthetic frames:
a claim that holds, one that fails, one not measured, and perplexities on unequal windows."""
import pandas as pd
import pytest

from wanda_core.study.experiments.claims import claims, verdict

U = "unstructured"


def paper_rows(override=None):
    """A small stand-in for data/paper_numbers.csv: one model, every Table 3 cell, verified."""
    v = {("dense", U): 5.0, ("magnitude", U): 15.0, ("sparsegpt", U): 6.5, ("wanda", U): 6.4,
         ("magnitude", "4:8"): 16.0, ("sparsegpt", "4:8"): 8.1, ("wanda", "4:8"): 8.0,
         ("magnitude", "2:4"): 55.0, ("sparsegpt", "2:4"): 10.0, ("wanda", "2:4"): 11.0} | (override or {})
    return pd.DataFrame([{"table": "Table 3", "model": "LLaMA-2-7B", "structure": s, "sparsity": 0.0 if m == "dense" else 0.5,
                          "method": m, "metric": "wikitext2_ppl", "task": None, "value": x, "source": "test",
                          "verified": "yes"} for (m, s), x in v.items()])


def nm_frame(ppl, windows=16):
    """Our Table 3 runs: `ppl` maps (method, structure) to perplexity; `windows` one size or a dict."""
    return pd.DataFrame([{"method": m, "structure": "-" if m == "dense" else s, "sparsity": 0.0 if m == "dense" else 0.5,
                          "ppl": p, "eval_windows": windows.get((m, s), 16) if isinstance(windows, dict) else windows,
                          "score_mask_s": {"wanda": 1.0, "sparsegpt": 50.0}.get(m) if s == U else None,
                          "device": "CPU test", "nsamples": None, "seed": None} for (m, s), p in ppl.items()])


OURS = {("dense", U): 20.0, ("magnitude", U): 60.0, ("sparsegpt", U): 24.0, ("wanda", U): 25.0,
        ("magnitude", "4:8"): 70.0, ("sparsegpt", "4:8"): 30.0, ("wanda", "4:8"): 31.0,
        ("magnitude", "2:4"): 200.0, ("sparsegpt", "2:4"): 35.0, ("wanda", "2:4"): 40.0}


def by_key(df):
    return df.set_index("key")


def test_verdict_rules():
    assert verdict(True, True) == "yes" and verdict(None, False) == "no"
    assert verdict(True, None) == "not measured"
    assert verdict(False, True).startswith("n/a")


def test_a_claim_that_holds_and_one_that_fails():
    c = by_key(claims({"nm": nm_frame(OURS)}, paper_rows()))
    assert c.loc["beat_mag", "verdict"] == "yes"          # 25 < 60
    assert "magnitude 60.00 vs Wanda 25.00 (2.40x)" in c.loc["beat_mag", "ours"]
    assert c.loc["vs_sgpt", "verdict"] == "yes"           # 25 / 24 = 1.042 <= 1.10
    assert c.loc["vs_dense", "verdict"] == "yes"          # 25 / 20 = 1.25 <= the paper's largest 6.4 / 5 = 1.28
    assert c.loc["structure", "verdict"] == "yes"         # 25 < 31 < 40
    bad = OURS | {("wanda", "4:8"): 45.0, ("dense", U): 15.0}   # 4:8 worse than 2:4; 25 / 15 = 1.67 > 1.28
    c = by_key(claims({"nm": nm_frame(bad)}, paper_rows()))
    assert c.loc["structure", "verdict"] == "no" and c.loc["vs_dense", "verdict"] == "no"
    assert c.loc["structure", "reason"]


def test_not_measured_without_records():
    c = by_key(claims({"nm": nm_frame(OURS)}, paper_rows()))
    assert c.loc["sweep", "verdict"] == "not measured"    # no sparsity sweep given
    assert c.loc["calib1", "verdict"] == "not measured"   # no calibration sweep given
    missing = {k: v for k, v in OURS.items() if k != ("magnitude", "2:4")}
    assert by_key(claims({"nm": nm_frame(missing)}, paper_rows())).loc["mag24", "verdict"] == "not measured"


def test_perplexities_on_unequal_windows_are_not_compared():
    c = by_key(claims({"nm": nm_frame(OURS, {("magnitude", U): 32})}, paper_rows()))
    assert c.loc["beat_mag", "verdict"] == "not measured"
    assert "different numbers of windows (16, 32)" in c.loc["beat_mag", "ours"]
    assert c.loc["structure", "verdict"] == "yes"         # claims not touching that run are still checked


def test_paper_side_decides_na_and_unverified_rows_are_ignored():
    # the paper's own numbers do not show the 2:4 collapse: the verdict says so instead of yes/no
    c = by_key(claims({"nm": nm_frame(OURS)}, paper_rows({("magnitude", "2:4"): 12.0})))
    assert c.loc["mag24", "verdict"].startswith("n/a")
    p = paper_rows()
    p.loc[p["method"] == "magnitude", "verified"] = "no"  # unverified rows are never used
    c = by_key(claims({"nm": nm_frame(OURS)}, p))
    assert "n/a vs" in c.loc["beat_mag", "paper"] and "0 of 0 verified models" in c.loc["beat_mag", "paper"]


def test_sweep_and_calibration_claims():
    sweep = pd.DataFrame([{"method": m, "sparsity": s, "ppl": p, "eval_windows": 16}
                          for m, s, p in [("magnitude", 0.3, 10.0), ("wanda", 0.3, 10.05), ("magnitude", 0.5, 30.0),
                                          ("wanda", 0.5, 20.0)]])
    cal = pd.DataFrame([{"method": "wanda", "nsamples": n, "seed": 0, "ppl": p, "eval_windows": 16}
                        for n, p in [(1, 27.0), (32, 25.0)]])
    paper = pd.concat([paper_rows(), pd.DataFrame([{"table": "Figure 3", "model": "LLaMA-2-7B", "structure": U, "sparsity": 0.5,
                                                    "method": "wanda", "metric": "wikitext2_ppl_1_calib_window", "task": None,
                                                    "value": 6.9, "source": "test", "verified": "yes"}])])
    c = by_key(claims({"nm": nm_frame(OURS), "sweep": sweep, "calib": cal}, paper))
    assert c.loc["sweep", "verdict"] == "yes"             # 10.05 <= 1.01 * 10 and 20 <= 30
    assert c.loc["calib1", "verdict"] == "yes"            # 27 / 25 = 1.08 <= 1.10
    cal.loc[cal["nsamples"] == 1, "ppl"] = 30.0
    assert by_key(claims({"nm": nm_frame(OURS), "calib": cal}, paper)).loc["calib1", "verdict"] == "no"


@pytest.mark.parametrize("frames", [{}, {"nm": None}])
def test_no_frames_at_all_measures_nothing(frames):
    c = claims(frames, paper_rows())
    assert set(c["verdict"]) == {"not measured"}
