"""After Wanda: RIA's score, OWL's allocation and DSnoT's refinement, by hand, as properties, end to
end on tiny models of two architectures, and every bad input."""
import copy
import math
import re
from pathlib import Path

import pytest
import torch

from wanda_core import RunConfig
from wanda_core.prune.allocation import block_sparsities, outlier_ratio, owl_sparsities
from wanda_core.prune.engine import prune_model
from wanda_core.prune.masks import nm_mask, unstructured_mask
from wanda_core.models.loaders import load_model
from wanda_core.prune.blocks import find_blocks, find_linears
from wanda_core.prune.refine import accumulate_moments, dsnot, skipped
from wanda_core.runs.records import record_id
from wanda_core.runs.runner import run
from wanda_core.prune.scores import LayerStats, ria


# --- RIA -------------------------------------------------------------------------------------
def test_ria_2x3_by_hand():
    W = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.0, -1.0]])
    stats = LayerStats(input_sq_mean=torch.tensor([4.0, 1.0, 9.0]), tokens=10)  # ||X|| ~ 2, 1, 3
    # column sums of |W|: 5, 2, 4; row sums: 6, 5; activation factor ||X_j||^0.5
    want = torch.tensor([[(1 / 5 + 1 / 6) * math.sqrt(2), (2 / 2 + 2 / 6) * 1.0, (3 / 4 + 3 / 6) * math.sqrt(3)],
                         [(4 / 5 + 4 / 5) * math.sqrt(2), 0.0, (1 / 4 + 1 / 5) * math.sqrt(3)]])
    assert torch.allclose(ria(W, stats), want, atol=1e-6)


def test_ria_zero_column_scores_zero_not_nan():
    W = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    s = ria(W, LayerStats(input_sq_mean=torch.ones(2), tokens=1))
    assert torch.isfinite(s).all() and s[:, 0].eq(0).all()


# --- OWL -------------------------------------------------------------------------------------
def test_outlier_ratio_by_hand():
    # mean of [1, 1, 1, 1, 10] is 2.8; above 2 x 2.8 = 5.6 is one of five scores
    assert outlier_ratio([torch.tensor([[1.0, 1.0]]), torch.tensor([1.0, 1.0, 10.0])], m=2) == pytest.approx(0.2)


def test_owl_mapping_by_hand():
    # ratios 1, 2, 3 -> D = 0, 0.1, 0.2 (span 2 * lambda), mean 0.1 -> sparsities 0.6, 0.5, 0.4
    assert owl_sparsities([1, 2, 3], target=0.5, lam=0.1) == pytest.approx([0.6, 0.5, 0.4])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target,lam", [(0.5, 0.08), (0.7, 0.08), (0.6, 0.2)])
def test_owl_weighted_mean_and_spread(seed, target, lam):
    g = torch.Generator().manual_seed(seed)
    ratios = (torch.rand(12, generator=g) * 5).tolist()
    sizes = torch.randint(1, 100, (12,), generator=g).tolist()
    s = torch.tensor(owl_sparsities(ratios, target, lam, sizes), dtype=torch.float64)
    w = torch.tensor(sizes, dtype=torch.float64)
    assert float((s * w).sum() / w.sum()) == pytest.approx(target, abs=1e-12)
    assert float(s.max() - s.min()) == pytest.approx(2 * lam, abs=1e-12)
    assert bool(((s - target).abs() <= 2 * lam + 1e-12).all())
    order = torch.argsort(torch.tensor(ratios))  # more outliers, lower sparsity
    assert bool((s[order].diff() <= 1e-12).all())


def test_owl_equal_ratios_are_uniform_and_uniform_is_target():
    assert owl_sparsities([3.0, 3.0, 3.0], 0.7, 0.08) == [0.7, 0.7, 0.7]
    assert block_sparsities("uniform", 0.6, 4) == [0.6] * 4


def test_owl_allocation_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"block 0 sparsity 1.0200, outside \[0, 1\).*choose owl_lambda below 0.0667"):
        owl_sparsities([0, 10, 10, 10], target=0.9, lam=0.08)  # block 0: 0.9 + 0.12


# --- DSnoT -----------------------------------------------------------------------------------
def _stats_from(x):
    """Statistics of inputs x (windows, tokens, features) as the engine's hooks gather them."""
    st = LayerStats(input_sq_mean=x.reshape(-1, x.shape[-1]).pow(2).mean(0), tokens=x.shape[0] * x.shape[1])
    for w in x.split(2):  # two windows per batch: the running means must not depend on batching
        accumulate_moments(st, w)
    return st


def test_accumulate_moments_match_direct_formulas():
    x = torch.randn(5, 7, 3) + torch.tensor([1.0, -2.0, 0.0])
    st = _stats_from(x)
    assert torch.allclose(st.input_mean, x.reshape(-1, 3).mean(0), atol=1e-6)
    assert torch.allclose(st.input_var, x.var(dim=1, unbiased=False).mean(0), atol=1e-6)
    assert (st.moment_tokens, st.windows) == (35, 5)


def test_dsnot_one_row_by_hand():
    # E[x] = 1 per window of one token, Var = 1: metric = W. Pruned: columns 0 (1.0) and 3 (0.5),
    # expected error e = 1.5 > 0.1: regrow column 0 (largest positive), prune column 1 (the only
    # kept negative), e = 1.5 - 1 - 1 = -0.5; then no pruned negative is left to regrow: stop.
    W = torch.tensor([[1.0, -1.0, 2.0, 0.5]])
    st = LayerStats(input_sq_mean=torch.ones(4), tokens=1, input_mean=torch.ones(4), input_var=torch.ones(4),
                    moment_tokens=1, windows=1)
    mask = torch.tensor([[True, False, False, True]])
    assert dsnot(W, mask, st).tolist() == [[False, True, False, True]]


def _random_layer(seed=0, rows=48, cols=256):
    """A random layer whose inputs have per-feature offsets larger than their spread, as LLM
    activations do: the regime DSnoT's expected-error criterion is built for (with zero-mean inputs
    it only trades one weight's variance for another's)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g)
    x = torch.randn(8, 32, cols, generator=g) * torch.rand(cols, generator=g) * 0.5 + torch.randn(cols, generator=g) * 2
    return W, x


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_dsnot_keeps_counts_and_lowers_reconstruction_error(seed, structure):
    W, x = _random_layer(seed)
    st = _stats_from(x)
    score = W.abs() * st.input_norm
    mask = nm_mask(score, 2, 4) if structure == "2:4" else unstructured_mask(score, 0.6, "row")
    new = dsnot(W, mask, st, score, (2, 4) if structure == "2:4" else None, threshold=0.0)
    assert not torch.equal(new, mask), "no swap happened: the test would prove nothing"
    assert torch.equal(new.sum(1), mask.sum(1))  # every row keeps its count exactly
    if structure == "2:4":
        assert new.reshape(W.shape[0], -1, 4).sum(-1).eq(2).all()
    X = x.reshape(-1, W.shape[1])

    def err(m):  # the layer's reconstruction error on its calibration inputs
        return float((X @ (W * m).t()).pow(2).sum())

    assert err(new) <= err(mask)


def test_dsnot_skip_by_name():
    assert skipped("mlp.up_proj", "mlp") and skipped("fc1", "mlp") and not skipped("self_attn.q_proj", "mlp")
    assert skipped("attention.dense", "attn") and not skipped("mlp.dense_h_to_4h", "attn")
    assert not skipped("mlp.up_proj", "none")


# --- end to end ------------------------------------------------------------------------------
def _windows(n=4, seqlen=40):
    return torch.randint(0, 1000, (n, seqlen), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
@pytest.mark.parametrize("kw", [dict(allocation="owl", sparsity=0.7), dict(method="sparsegpt", allocation="owl", sparsity=0.7),
                                dict(score="ria", group="layer"), dict(score="ria", structure="2:4"),
                                dict(refine="dsnot", sparsity=0.7), dict(refine="dsnot", structure="2:4", dsnot_skip="none")])
def test_successors_end_to_end(name, kw):
    model, _, _ = load_model(name)
    cfg = RunConfig(model=name, nsamples=4, seqlen=40, batch_size=3, **kw)
    base = copy.deepcopy(model)
    rep = prune_model(model, cfg, _windows(), progress=False)
    target = cfg.target_sparsity
    assert rep["sparsity"]["overall"] == pytest.approx(target, abs=0.02)
    if cfg.allocation == "owl":
        used = rep["allocation"]["block_sparsity"]
        assert len(used) == len(find_blocks(model)) and max(used) - min(used) == pytest.approx(0.16)
        assert rep["sparsity"]["per_block"] == pytest.approx(used, abs=0.02)  # the record keeps what was used
    if cfg.refine == "dsnot":
        swaps = {k: v["dsnot_swaps"] for k, v in rep["per_linear"].items()}
        assert sum(swaps.values()) > 0
        if cfg.dsnot_skip == "mlp":  # the official default refines the attention projections only
            assert all(v == 0 or "attn" in k for k, v in swaps.items())
        ref = copy.deepcopy(base)
        prune_model(ref, cfg.replace(refine="none"), _windows(), progress=False)
        for (n1, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
            if a.dim() == 2 and a.shape != b.shape:
                continue
            if any(n1.endswith(f"{ln}.weight") for blk in find_blocks(model) for ln in find_linears(blk)):
                assert torch.equal((a == 0).sum(1), (b == 0).sum(1)), n1  # same count per row as Wanda's mask


def test_runner_records_owl_and_default_ids_unchanged(runs_dir):
    plain = RunConfig(model="tiny-llama", nsamples=2, seqlen=32, eval_windows=2)
    assert not {"allocation", "refine", "owl_m", "dsnot_cycles"} & set(plain.prune_fields())
    assert record_id(plain) == record_id(plain.replace(owl_lambda=0.2, dsnot_cycles=3))  # defaults ignored
    owl = plain.replace(allocation="owl", sparsity=0.6)
    assert record_id(owl) != record_id(owl.replace(owl_lambda=0.1))
    rec = run(owl, runs_dir, progress=False)
    assert rec["prune_fields"]["allocation"] == "owl"
    assert len(rec["prune"]["allocation"]["block_sparsity"]) == 2
    assert math.isfinite(rec["results"]["ppl"]["wiki"]["ppl"])
    assert run(owl, runs_dir, progress=False)["id"] == rec["id"]  # reused


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    (dict(allocation="owls"), r"unknown allocation 'owls'; valid: uniform, owl"),
    (dict(refine="dsnt"), r"unknown refine 'dsnt'; valid: none, dsnot"),
    (dict(allocation="owl", structure="2:4"), r"per-block N:M ratio is not defined"),
    (dict(allocation="owl", sparsity=0.5, owl_lambda=0.5), r"owl_lambda must be in \[0, target sparsity\) = \[0, 0.5\), got 0.5"),
    (dict(allocation="owl", owl_lambda=-0.01), r"owl_lambda must be in \[0, target sparsity\)"),
    (dict(allocation="owl", owl_m=0), r"owl_m must be > 0"),
    (dict(allocation="owl", owl_m="5"), r"owl_m must be a number"),
    (dict(method="sparsegpt", refine="dsnot"), r"refine 'dsnot' swaps weights of a fixed matrix"),
    (dict(refine="dsnot", weight_update="iterative"), r"refine 'dsnot' swaps weights"),
    (dict(refine="dsnot", dsnot_cycles=0), r"dsnot_cycles must be a whole number >= 1, got 0"),
    (dict(refine="dsnot", dsnot_threshold=-1.0), r"dsnot_threshold must be a number >= 0, got -1.0"),
    (dict(refine="dsnot", dsnot_var_power=float("nan")), r"dsnot_var_power must be a number >= 0"),
    (dict(refine="dsnot", dsnot_skip="ffn"), r"unknown dsnot_skip 'ffn'; valid: mlp, attn, none"),
])
def test_bad_successor_inputs(kw, msg, runs_dir):
    with pytest.raises(ValueError, match=msg):
        RunConfig(**kw).validate()
    with pytest.raises(ValueError, match=msg):  # refused by the runner before any model is loaded
        run(RunConfig(model="no-such-model", **kw), runs_dir, progress=False)


def test_bad_pure_function_inputs():
    with pytest.raises(ValueError, match="one positive parameter count per block"):
        owl_sparsities([1, 2], 0.5, 0.1, sizes=[1])
    with pytest.raises(ValueError, match="needs one outlier ratio per block"):
        block_sparsities("owl", 0.5, 3, [1.0, 2.0])
    with pytest.raises(ValueError, match="needs the layer's input mean"):
        dsnot(torch.ones(2, 4), torch.zeros(2, 4, dtype=torch.bool), LayerStats())
    with pytest.raises(ValueError, match="a bool tensor shaped like W"):
        st = _stats_from(torch.randn(2, 3, 4))
        dsnot(torch.ones(2, 4), torch.zeros(2, 3, dtype=torch.bool), st)


# --- the researchers' page: its worked example runs ------------------------------------------
def test_researchers_page_example_runs(runs_dir, monkeypatch):
    page = (Path(__file__).resolve().parent.parent / "book" / "researchers.md").read_text()
    code = re.search(r"<!-- tested -->\s*```python\n(.*?)```", page, re.S).group(1)
    monkeypatch.chdir(runs_dir.parent)
    scope: dict = {}
    exec(compile(code, "book/researchers.md", "exec"), scope)
    rec = scope["record"]
    assert rec["prune_fields"]["score"] == "ria_a1" and rec["prune_fields"]["allocation"] == "owl"
    assert math.isfinite(rec["results"]["ppl"]["wiki"]["ppl"])
