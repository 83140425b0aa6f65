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


def test_gpu_tables_are_none_and_sentences_say_so_when_nothing_is_committed(tmp_path):
    """Chapters 9 and 10 on a checkout without GPU records: no empty table, a sentence instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wanda_core.study.experiments.speedup import speedup

    s = speedup(tmp_path)
    for f in (report.speedup.provenance_table, report.speedup.errors_table, report.speedup.blocks_table,
              report.speedup.layers_table, report.speedup.stack_table):
        assert f(s) is None, f.__name__
    before = plt.get_fignums()
    report.speedup.speedup_tokens(s["tokens"])
    assert plt.get_fignums() == before  # no figure drawn
    assert "No 2:4 speed-up has been measured yet" in report.speedup.speedup_status(s)
    empty = pd.DataFrame(columns=["method", "phase", "device", "model_score_mask_s", "source"])
    assert report.timing.gpu_table(empty) is None and "No GPU record" in report.timing.gpu(empty)
    assert report.timing.offload_table(empty) is None and "No offload record" in report.timing.offload(empty)


def test_gpu_tables_show_committed_records():
    from wanda_core.study.experiments.speedup import speedup

    s = speedup()  # results/speedup/ holds the H200 records
    assert not s["tokens"].empty
    html = report.speedup.stack_table(s).to_html()
    assert "Decoder stack, ms per forward" in html and "prefill" in html
    assert "Where each record was measured" in report.speedup.provenance_table(s).to_html()


def test_sweep_without_fifty_percent_says_so():
    sw = pd.DataFrame({"method": ["dense", "wanda", "magnitude"], "sparsity": [0.0, 0.6, 0.6], "structure": "unstructured",
                       "model": "smollm2-135m", "dataset": "wiki", "ppl": [20.0, 30.0, 90.0], "ppl_ratio": [1.0, 1.5, 4.5]})
    assert report.sweeps.half_vs_paper_table(sw) is None
    assert "does not include 50%" in report.sweeps.half_vs_paper(sw)


def test_unverified_rows_either_a_table_or_a_note():
    from wanda_core.study import paper

    n = len(paper.unverified())
    t, note = report.claims.unverified_table(), report.claims.every_row_verified()
    assert (t is None) == (n == 0) and (note == "") == (n > 0)
    if n:
        assert f"({n} of {len(paper.numbers())})" in t.to_html()


def test_pruned_runs_drop_the_dense_baseline():
    df = pd.DataFrame({"method": ["dense", "wanda", "magnitude"], "ppl": [1.0, 2.0, 3.0]})
    assert present.pruned_runs(df)["method"].tolist() == ["wanda", "magnitude"]
