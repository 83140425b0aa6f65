"""The computed sentences and derived tables of the later chapters, on synthetic frames: a claim
that holds, one that fails, one not measured; labels from wanda_core.report.present."""
import pandas as pd

from wanda_core import report
from wanda_core.report import present


def ladder_claims(**over):
    d = {"model": ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"], "params": [1.3e8, 2.7e8, 4.9e8],
         "where": ["default"] * 3,
         "wanda_over_sparsegpt": [1.30, 1.20, 1.05], "within_10pct": [False, False, True],   # moves toward the paper
         "wanda_over_dense": [2.0, 2.4, 1.9], "within_1_28x": [False, False, False],         # does not, at every step
         "score_time_gap": [None, None, None], "gap_over_10x": [None, None, None]}            # not measured
    return pd.DataFrame(d | over)


def test_size_explanations_one_consistent_one_not_one_unmeasured():
    lines = report.ladder.size_explanations(ladder_claims()).splitlines()
    assert len(lines) == 3
    assert "holds on 1 of 3 rungs (Qwen2.5-Coder-0.5B-Instruct)" in lines[0]
    assert "2 of 2 steps" in lines[0] and "consistent with the small-model explanation" in lines[0]
    assert "0 of 3 rungs" in lines[1] and "1 of 2 steps" in lines[1] and "size alone does not explain it" in lines[1]
    assert "not measured on any rung" in lines[2]


def test_size_explanations_when_a_claim_holds_everywhere_or_on_one_rung():
    held = ladder_claims(within_1_28x=[True] * 3, wanda_over_dense=[1.1, 1.2, 1.0])
    assert "no failure for size to explain" in report.ladder.size_explanations(held).splitlines()[1]
    one = report.ladder.size_explanations(ladder_claims().iloc[:1])
    assert "one rung only" in one.splitlines()[0]


def test_claims_table_reads_verdicts_as_words():
    html = present.table(report.ladder.claims_table(ladder_claims())).to_html()
    assert "Qwen2.5-Coder-0.5B-Instruct" in html and ">yes<" in html and ">no<" in html
    assert "True" not in html and "False" not in html


def test_zeroshot_cells_and_resolved_comparisons():
    acc = pd.DataFrame({"config": ["dense", "dense", "wanda 50%", "wanda 50%"], "task": ["boolq", "rte"] * 2,
                        "acc": [0.6, 0.5, 0.55, 0.5], "ci95_hi": [0.7, 0.6, 0.65, 0.6]})
    mean = pd.DataFrame({"config": ["dense", "wanda 50%"], "mean_acc": [0.55, 0.525], "ci95_hi": [0.6, 0.575],
                         "tasks": [2, 2]})
    t = report.zeroshot.accuracy({"acc": acc, "mean": mean})
    assert list(t.columns) == ["config", "boolq", "rte", "mean (2 tasks)"]
    assert t.iloc[0].tolist() == ["dense", "60.0 ± 10.0", "50.0 ± 10.0", "55.0 ± 5.0"]
    cmp = pd.DataFrame({"a": ["dense", "wanda 50%"], "b": ["wanda 50%", "magnitude 50%"], "diff": [0.1, 0.01],
                        "stderr": [0.02, 0.02], "resolved": [True, False]})
    lines = report.zeroshot.resolved(cmp).splitlines()
    assert lines[0] == "- Dense - Wanda 50%: +10.00 points (stderr 2.00): resolved"
    assert "**not resolved**" in lines[1] and "Magnitude 50%" in lines[1]


def test_successor_claims_sentence():
    c = pd.DataFrame({"method": ["OWL + Wanda", "RIA"], "baseline": ["Wanda", "Wanda"], "setting": ["70%", "2:4"],
                      "ppl_gain": [5.0, -1.0], "spread": [1.0, 0.5], "shown": [True, False], "beyond_spread": [True, False]})
    lines = report.successors.successor_claims(c).splitlines()
    assert lines[0] == "- **OWL + Wanda** vs Wanda at 70%: better by 5.000 in perplexity, beyond twice the seeds' spread (2.000)."
    assert lines[1] == "- **RIA** vs Wanda at 2:4: **not shown** (worse by 1.000)."
