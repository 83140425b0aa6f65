"""SparseGPT's weight update on a single layer: it must beat mask-only pruning at the same mask."""
import torch

from wanda_core.prune.masks import unstructured_mask
from wanda_core.prune.scores import magnitude
from wanda_core.prune.sparsegpt import sparsegpt_prune


def _layer(seed=0, rows=32, cols=64, tokens=512):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g)
    # correlated inputs (as real activations are), so the update has something to exploit
    X = torch.randn(tokens, cols // 4, generator=g) @ torch.randn(cols // 4, cols, generator=g)
    X += 0.1 * torch.randn(tokens, cols, generator=g)
    H = 2 / tokens * X.t() @ X
    return W, X, H


def _err(W, Wp, X):
    return ((X @ W.t() - X @ Wp.t()) ** 2).sum().item()


def test_update_beats_mask_only_at_the_same_mask():
    W, X, H = _layer()
    mask = unstructured_mask(magnitude(W), 0.5, "row")
    Wu, m2 = sparsegpt_prune(W, H, 0.5, mask_mode="fixed", fixed_mask=mask, blocksize=16)
    assert torch.equal(m2, mask)
    assert (Wu[mask] == 0).all()
    assert _err(W, Wu, X) < 0.8 * _err(W, W.masked_fill(mask, 0), X)


def test_own_mask_sparsity_and_error():
    W, X, H = _layer(1)
    Wp, mask = sparsegpt_prune(W, H, 0.5, blocksize=16)
    assert abs(mask.float().mean().item() - 0.5) < 1e-6
    assert (Wp[mask] == 0).all() and ((Wp != 0) == ~mask).all()
    assert _err(W, Wp, X) < _err(W, W.masked_fill(mask, 0), X)


def test_nm_with_update():
    W, X, H = _layer(2)
    Wp, mask = sparsegpt_prune(W, H, nm=(2, 4), blocksize=16)
    assert ((~mask).reshape(32, -1, 4).sum(-1) == 2).all()
    assert _err(W, Wp, X) < _err(W, W.masked_fill(mask, 0), X)


def test_iterative_score_mode_uses_the_score():
    W, X, H = _layer(3)
    Wp, mask = sparsegpt_prune(W, H, 0.5, blocksize=16, mask_mode="score", score_fn=lambda Wb, cols: Wb.abs())
    assert (mask.reshape(32, 4, 16).sum(-1) == 8).all()  # per row within each block of 16 columns
    assert _err(W, Wp, X) < _err(W, W.masked_fill(mask, 0), X)


def test_dead_inputs_are_zeroed_not_nan():
    W, X, H = _layer(4)
    H[:, 3] = 0
    H[3, :] = 0
    Wp, _ = sparsegpt_prune(W, H, 0.5, blocksize=16)
    assert torch.isfinite(Wp).all() and (Wp[:, 3] == 0).all()


def test_update_by_hand_in_closed_form():
    # H = [[4, 2, 1], [2, 3, 1], [1, 1, 2]], no dampening, W rows all [1, 2, 3], a fixed mask per row.
    # Removing weights with only the columns to their right free to move, the update is the least-
    # squares optimum ||X(w - w')||^2 over those columns:
    #   prune cols 0,1: w2' = w2 + (H20 w0 + H21 w1) / H22 = 3 + (1 + 2) / 2           = 4.5
    #   prune col 0:    [w1', w2'] = [w1, w2] + w0 H[1:,1:]^-1 H[1:,0]
    #                   = [2, 3] + 1/5 [[2, -1], [-1, 3]] [2, 1] = [2 + 3/5, 3 + 1/5]   = [2.6, 3.2]
    #   prune col 1:    col 0 is left of it (kept as is); w2' = w2 + w1 H21 / H22 = 3 + 2/2 = 4
    H = torch.tensor([[4.0, 2.0, 1.0], [2.0, 3.0, 1.0], [1.0, 1.0, 2.0]])
    W = torch.tensor([[1.0, 2.0, 3.0]] * 3)
    mask = torch.tensor([[True, True, False], [True, False, False], [False, True, False]])
    expected = torch.tensor([[0.0, 0.0, 4.5], [0.0, 2.6, 3.2], [1.0, 0.0, 4.0]])
    for blocksize in (1, 2, 3):
        Wu, m = sparsegpt_prune(W, H, mask_mode="fixed", fixed_mask=mask, blocksize=blocksize, percdamp=0.0)
        assert torch.equal(m, mask)
        assert torch.allclose(Wu, expected, atol=1e-5), (blocksize, Wu)


def test_fixed_mask_update_does_not_depend_on_blocksize():
    W, X, H = _layer(5)
    mask = unstructured_mask(magnitude(W), 0.5, "row")
    outs = [sparsegpt_prune(W, H, mask_mode="fixed", fixed_mask=mask, blocksize=b)[0] for b in (1, 8, 16, 64)]
    for o in outs[1:]:
        assert torch.allclose(o, outs[0], atol=1e-4)
    assert not torch.allclose(outs[0], W.masked_fill(mask, 0), atol=1e-2)  # the update did change the kept weights


def test_inverse_hessian_factor_equals_the_official_route():
    """One flipped factorisation gives the official U (factor H, invert, factor the inverse again):
    sizes below, at and above the recursion's leaf, odd ones, and a dead input; U^T U = H^-1."""
    import pytest

    from wanda_core.prune.sparsegpt import inverse_hessian_cholesky

    for cols in (5, 192, 193, 577):
        _, X, H = _layer(cols % 7, cols=cols, tokens=4 * cols)
        H[3, :] = 0
        H[:, 3] = 0
        U, dead = inverse_hessian_cholesky(H, 0.01)
        Hd = H.clone()
        Hd[3, 3] = 1
        Hd.diagonal().add_(0.01 * torch.mean(torch.diag(Hd)))
        Hd64 = Hd.double()
        ref = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(Hd64)), upper=True)  # float64
        official = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(Hd)), upper=True)  # float32
        assert dead.tolist() == [i == 3 for i in range(cols)]
        assert torch.equal(U, U.triu()) and (U.diagonal() > 0).all()
        err = ((U.double() - ref).abs().max() / ref.abs().max()).item()
        err_official = ((official.double() - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-4 and err < 3 * err_official + 1e-6, (cols, err, err_official)  # as exact as float32 allows
        UtU = U.double().t() @ U.double()
        assert ((UtU - torch.linalg.inv(Hd64)).abs().max() / UtU.abs().max()).item() < 1e-4
        assert all(torch.equal(a, b) for a, b in zip(inverse_hessian_cholesky(H.triu(), 0.01), (U, dead)))  # reads only the upper triangle
    with pytest.raises(ValueError, match="not positive definite.*raise percdamp"):
        inverse_hessian_cholesky(-torch.eye(4), 0.0)


def test_linears_of_one_input_stacked_equal_pruned_one_by_one():
    """q/k/v (or gate/up) stacked by rows in one column loop: each gets its own unstructured
    threshold, so masks equal pruning each alone, and the weights agree to rounding (every step is
    per row; only the lazy block update's matrix product has more rows)."""
    import pytest

    _, _, H = _layer(3, cols=64)
    g = torch.Generator().manual_seed(1)
    Ws = [torch.randn(r, 64, generator=g) * s for r, s in ((24, 1.0), (8, 0.2), (8, 5.0))]  # scales differ: one threshold would not do
    for nm in (None, (2, 4)):
        alone = [sparsegpt_prune(W, H, 0.5, nm, blocksize=16) for W in Ws]
        Wn, mask = sparsegpt_prune(torch.cat(Ws), H, 0.5, nm, blocksize=16, row_groups=[24, 8, 8])
        assert torch.equal(mask, torch.cat([m for _, m in alone]))
        assert torch.allclose(Wn, torch.cat([w for w, _ in alone]), rtol=1e-5, atol=1e-6)
        for m in mask.split([24, 8, 8]):  # each Linear at its own 50%, not one threshold over all three
            assert m.float().mean().item() == 0.5
    with pytest.raises(ValueError, match="row_groups"):
        sparsegpt_prune(torch.cat(Ws), H, 0.5, row_groups=[24, 8])


def test_layer_threshold_on_the_transposed_block_equals_unstructured_mask():
    """SparseGPT's block mask is chosen on W transposed; the layer-wide choice, ties at the
    threshold included (they are broken by position in the (rows, columns) order), is unchanged."""
    from wanda_core.prune.sparsegpt import _layer_mask_t

    g = torch.Generator().manual_seed(0)
    for rows, cols, ties in ((7, 5, False), (7, 5, True), (300, 128, False), (300, 128, True), (64, 1, True)):
        s = torch.randn(rows, cols, generator=g) ** 2
        if ties:
            s = (s * 2).round()  # many zeros and equal values: the threshold falls among ties
        for sp in (0.0, 0.3, 0.5, 0.9):
            assert torch.equal(_layer_mask_t(s.t().contiguous(), sp), unstructured_mask(s, sp, "layer").t()), (rows, cols, ties, sp)


def test_single_threaded_blocks_are_bit_for_bit_and_restore_the_thread_count(monkeypatch):
    """The work inside a block (mask choice, column loop) runs on BLOCK_THREADS threads (fast when
    the cores are shared); its operations are element-wise or exact selections, so masks and weights
    equal those on all of torch's threads bit for bit (shapes large enough for torch to split the
    rank-1 updates over threads). The count is lowered inside a block (a score function sees it) and
    restored after, an error included."""
    import pytest

    from wanda_core.prune import sparsegpt

    _, _, H = _layer(6, cols=256, tokens=1024)
    W = torch.randn(640, 256, generator=torch.Generator().manual_seed(6))
    mask = unstructured_mask(magnitude(W), 0.5, "row")
    threads = torch.get_num_threads()
    runs = {}
    for n in (1, threads):
        monkeypatch.setattr(sparsegpt, "BLOCK_THREADS", n)
        runs[n] = [sparsegpt_prune(W, H, 0.5), sparsegpt_prune(W, H, 0.5, row_groups=[512, 128]),
                   sparsegpt_prune(W, H, nm=(2, 4)), sparsegpt_prune(W, H, mask_mode="fixed", fixed_mask=mask)]
        assert torch.get_num_threads() == threads
    for (w1, m1), (wn, mn) in zip(runs[1], runs[threads]):
        assert torch.equal(m1, mn) and torch.equal(w1, wn)

    monkeypatch.setattr(sparsegpt, "BLOCK_THREADS", 1)
    seen = []

    def score(Wb, cols):
        seen.append(torch.get_num_threads())
        if cols.start >= 8:
            raise RuntimeError("a failing score")
        return Wb.abs()

    with pytest.raises(RuntimeError, match="a failing score"):
        sparsegpt_prune(W[:, :16], H[:16, :16], nm=(2, 4), mask_mode="score", score_fn=score, blocksize=16)
    assert seen == [1, 1, 1] and torch.get_num_threads() == threads
