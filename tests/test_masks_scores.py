"""Scores and masks on tensors small enough to check by hand, plus property tests."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wanda_core.runs.config import RunConfig
from wanda_core.prune.masks import alpha_mask, nm_mask, structure_mask, threshold_mask, unstructured_mask
from wanda_core.prune.scores import LayerStats, magnitude, wanda


def test_wanda_1x4_row_by_hand():
    # W = [4, -1, 3, -2]; activation norms ||X_j|| = [1, 10, 0.1, 2]
    # |W| * ||X|| = [4, 10, 0.3, 4]: Wanda removes the 0.3 (w=3) and, of the two 4s, the first by
    # position (stable sort). Magnitude would remove -1 and -2 instead.
    W = torch.tensor([[4.0, -1.0, 3.0, -2.0]])
    stats = LayerStats(input_sq_mean=torch.tensor([1.0, 100.0, 0.01, 4.0]), tokens=10)
    s = wanda(W, stats)
    assert torch.allclose(s, torch.tensor([[4.0, 10.0, 0.3, 4.0]]))
    assert unstructured_mask(s, 0.5, "row").tolist() == [[True, False, True, False]]
    assert unstructured_mask(magnitude(W), 0.5, "row").tolist() == [[False, True, False, True]]


def test_24_on_a_known_row():
    s = torch.tensor([[1.0, 5.0, 3.0, 2.0, 0.1, 0.2, 9.0, 8.0]])
    # keep the 2 largest of every 4: {5, 3} and {9, 8}
    assert nm_mask(s, 2, 4).tolist() == [[True, False, False, True, True, True, False, False]]
    # 4:8 keeps the 4 largest of all 8: 5, 3, 9, 8
    assert nm_mask(s, 4, 8).tolist() == [[True, False, False, True, True, True, False, False]]
    assert nm_mask(s, 1, 4).sum() == 6


def test_groups_differ_by_hand():
    s = torch.tensor([[1.0, 2.0], [30.0, 40.0]])
    assert unstructured_mask(s, 0.5, "row").tolist() == [[True, False], [True, False]]
    assert unstructured_mask(s, 0.5, "column").tolist() == [[True, True], [False, False]]
    assert unstructured_mask(s, 0.5, "layer").tolist() == [[True, True], [False, False]]


def test_magnitude_layer_threshold():
    torch.manual_seed(0)
    W = torch.randn(32, 48)
    m = unstructured_mask(magnitude(W), 0.5, "layer")
    assert m.sum() == W.numel() // 2
    assert W.abs()[m].max() <= W.abs()[~m].min()  # one threshold for the whole layer
    # rows are not balanced: per-layer is not per-row
    assert len(set(m.sum(1).tolist())) > 1


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 8), blocks=st.integers(1, 6), nm=st.sampled_from([(1, 2), (2, 4), (4, 8), (1, 4), (3, 4)]),
       seed=st.integers(0, 10_000))
def test_nm_exact_counts(rows, blocks, nm, seed):
    n, m = nm
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, blocks * m, generator=g)
    mask = nm_mask(s, n, m)
    kept = (~mask).reshape(rows, blocks, m).sum(-1)
    assert (kept == n).all()
    # the kept ones are the top-n of their block
    sb, mb = s.reshape(rows, blocks, m), mask.reshape(rows, blocks, m)
    kept_min = torch.where(~mb, sb, torch.full_like(sb, float("inf"))).amin(-1)
    pruned_max = torch.where(mb, sb, torch.full_like(sb, -float("inf"))).amax(-1)
    assert (kept_min >= pruned_max).all()


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 40), sparsity=st.floats(0, 0.99), seed=st.integers(0, 10_000),
       group=st.sampled_from(["row", "column", "layer"]))
def test_unstructured_exact_counts(rows, cols, sparsity, seed, group):
    s = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    mask = unstructured_mask(s, sparsity, group)
    if group == "row":
        assert (mask.sum(1) == int(cols * sparsity)).all()
    elif group == "column":
        assert (mask.sum(0) == int(rows * sparsity)).all()
    else:
        assert mask.sum() == int(rows * cols * sparsity)


def test_wanda_equals_brute_force_formula():
    torch.manual_seed(1)
    W, X = torch.randn(6, 10), torch.randn(50, 10) * torch.linspace(0.1, 5, 10)
    stats = LayerStats(input_sq_mean=(X**2).mean(0), tokens=50)
    brute = torch.empty_like(W)
    for i in range(6):
        for j in range(10):
            brute[i, j] = abs(W[i, j]) * torch.sqrt(sum(X[t, j] ** 2 for t in range(50)) / 50)
    assert torch.allclose(wanda(W, stats), brute, rtol=1e-5)


def test_magnitude_threshold_rule_by_hand():
    # The official prune_magnitude: thresh = sort(|W|)[int(numel * 0.5)], prune every |W| <= thresh.
    # One 2x4 layer with ties: sorted |W| = [0.5, 1, 2, 2, 2, 3, 4, 5]; int(8 * 0.5) = 4 -> thresh 2,
    # so 0.5, 1 and all three 2s go: 5 of 8 (62.5%), where exact counts remove 4 (the first two 2s).
    s = torch.tensor([[3.0, 1.0, 2.0, 2.0], [5.0, 2.0, 4.0, 0.5]])
    official = [[False, True, True, True], [False, True, False, True]]
    assert threshold_mask(s, 0.5).tolist() == official
    assert structure_mask(s, 0.5, "layer", None, rule="threshold").tolist() == official
    assert unstructured_mask(s, 0.5, "layer").tolist() == [[False, True, True, True], [False, False, False, True]]
    # no ties: the threshold itself is the (k+1)-th smallest and is pruned too: 3 of 4 at 50%
    assert threshold_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 0.5).tolist() == [[False, True, True, True]]
    assert not threshold_mask(s, 0.0).any()  # ratio 0: the official main.py does not prune
    with pytest.raises(ValueError, match="one threshold per layer"):
        structure_mask(s, 0.5, "row", None, rule="threshold")


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 12), sparsity=st.floats(0.01, 0.99), seed=st.integers(0, 10_000))
def test_threshold_rule_equals_the_official_expression(rows, cols, sparsity, seed):
    W = torch.randint(-3, 4, (rows, cols), generator=torch.Generator().manual_seed(seed)).float()  # many ties
    metric = W.abs()
    thresh = torch.sort(metric.flatten())[0][int(W.numel() * sparsity)]
    assert torch.equal(threshold_mask(metric, sparsity), metric <= thresh)


def test_mask_rule_only_for_the_paper_magnitude_baseline():
    assert RunConfig(method="magnitude").mask_rule == "threshold"
    assert RunConfig(method="magnitude", weight_update="sequential").mask_rule == "threshold"  # ablate_mag_seq
    for cfg in (RunConfig(method="magnitude", group="row"), RunConfig(method="magnitude", structure="2:4"),
                RunConfig(method="magnitude", weight_update="iterative"), RunConfig(method="wanda", group="layer"),
                RunConfig(method="wanda", score="magnitude", group="layer"), RunConfig(method="sparsegpt")):
        assert cfg.mask_rule == "exact", cfg


def test_alpha_mask_by_hand():
    # row 0: scores 5 1 3 2 (total 11; sorted cumulative sums 1 3 6 11)
    # row 1: scores 1 1.5 2 100 (total 104.5; cumulative 1 2.5 4.5 104.5)
    # alpha 0.4: removes 2 + 3 = 5 of 8 (> 0.5), so bisect down to 0.2: row 0 removes the sums
    # within 2.2 (just the 1), row 1 those within 20.9 (1, 1.5, 2): 4 of 8 = the target.
    s = torch.tensor([[5.0, 1.0, 3.0, 2.0], [1.0, 1.5, 2.0, 100.0]])
    mask, alpha = alpha_mask(s, 0.5)
    assert alpha == pytest.approx(0.2)
    assert mask.tolist() == [[False, True, False, False], [True, True, True, False]]


def test_alpha_variant_reaches_target():
    torch.manual_seed(2)
    s = torch.rand(64, 128) * torch.rand(1, 128) * 10
    mask, alpha = alpha_mask(s, 0.5)
    assert abs(mask.float().mean().item() - 0.5) < 0.01
    assert 0 < alpha < 0.8
    # rows get different sparsities (that is the point of the variant)
    assert mask.sum(1).float().std() > 0


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match=r"sparsity must be"):
        unstructured_mask(torch.ones(2, 4), bad)


def test_bad_group_and_nm():
    with pytest.raises(ValueError, match="comparison group 'diagonal'; valid: row, column, layer"):
        unstructured_mask(torch.ones(2, 4), 0.5, "diagonal")
    with pytest.raises(ValueError, match="1 <= N < M"):
        nm_mask(torch.ones(2, 4), 4, 4)
    with pytest.raises(ValueError, match="does not divide 6"):
        nm_mask(torch.ones(2, 6), 2, 4)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(60, 300), k_frac=st.floats(0, 1), seed=st.integers(0, 10_000),
       ties=st.booleans())
def test_kth_smallest_is_torch_kthvalue(rows, cols, k_frac, seed, ties):
    """The numpy selection used on long CPU rows returns exactly torch.kthvalue's value (ties too)."""
    from wanda_core.prune.masks import kth_smallest

    s = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    if ties:
        s = (s * 3).round() / 3  # many equal values, the threshold among them
    k = min(cols, max(1, int(cols * k_frac)))
    assert torch.equal(kth_smallest(s, k), torch.kthvalue(s, k, dim=-1, keepdim=True).values)
    assert torch.equal(kth_smallest(s.double(), k), torch.kthvalue(s.double(), k, dim=-1, keepdim=True).values)


@settings(max_examples=25, deadline=None)
@given(cols=st.integers(16384, 200_000), k_frac=st.floats(0, 1), seed=st.integers(0, 10_000),
       kind=st.sampled_from(["normal", "ties", "sorted", "zeros", "nan"]))
def test_kth_smallest_of_one_long_row_is_torch_kthvalue(cols, k_frac, seed, kind):
    """A layer-wide threshold (one row of 10^4-10^5 scores) goes through a sampled bracket; the
    value is still exactly torch.kthvalue's: ties, sorted input (a sample that misleads), mostly
    equal values, NaN (sorted last by both)."""
    from wanda_core.prune.masks import kth_smallest

    g = torch.Generator().manual_seed(seed)
    s = torch.randn(1, cols, generator=g)
    if kind == "ties":
        s = (s * 3).round() / 3
    elif kind == "sorted":
        s = s.sort(dim=-1).values
    elif kind == "zeros":
        s[:, : cols * 3 // 4] = 0
    elif kind == "nan":
        s[0, torch.randint(0, cols, (50,), generator=g)] = float("nan")
    k = min(cols, max(1, int(cols * k_frac)))
    expected = torch.kthvalue(s, k, dim=-1, keepdim=True).values
    got = kth_smallest(s, k)
    assert torch.equal(got, expected) or (got.isnan().all() and expected.isnan().all())
