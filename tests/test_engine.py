"""The engine end to end on tiny random models, checked against a brute-force re-implementation
of layer-by-layer pruning that uses only full-model forward passes."""
import copy

import pytest
import torch
from torch import nn

from wanda_core import RunConfig
from wanda_core.prune.engine import prune_model, sparsity_report
from wanda_core.models.loaders import load_model
from wanda_core.prune.blocks import find_blocks, find_linears


def _windows(n=4, seqlen=40, seed=0):  # longer than tiny-gemma3's sliding window of 16
    return torch.randint(0, 1000, (n, seqlen), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def brute_force_wanda(model, windows, sparsity):
    """Block by block: full forward passes of the (partly pruned) model, inputs of each Linear
    collected whole, norms and per-row masks computed directly."""
    for block in find_blocks(model):
        inputs = {}
        hooks = [layer.register_forward_hook(lambda m, i, o, name=name: inputs.setdefault(name, []).append(i[0].reshape(-1, i[0].shape[-1])))
                 for name, layer in find_linears(block).items()]
        for w in windows:  # one window at a time, as the official code
            model(input_ids=w[None])
        for h in hooks:
            h.remove()
        for name, layer in find_linears(block).items():
            X = torch.cat(inputs[name]).double()
            norm = X.pow(2).sum(0).sqrt()
            score = layer.weight.double().abs() * norm
            k = int(layer.in_features * sparsity)
            idx = torch.argsort(score, dim=1, stable=True)[:, :k]
            layer.weight.data.scatter_(1, idx, 0.0)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3"])
def test_wanda_engine_equals_brute_force(name):
    model, tok, _ = load_model(name)
    ref = copy.deepcopy(model)
    windows = _windows()
    cfg = RunConfig(model=name, method="wanda", sparsity=0.5, nsamples=4, seqlen=40, batch_size=3)
    prune_model(model, cfg, windows, progress=False)
    brute_force_wanda(ref, windows, 0.5)
    for (n1, a), (n2, b) in zip(model.named_parameters(), ref.named_parameters()):
        assert n1 == n2
        agree = ((a == 0) == (b == 0)).float().mean().item()
        assert agree > 0.999, f"{n1}: masks agree on only {agree:.4f}"


def test_batch_size_does_not_change_the_result(tiny_llama):
    model, _, _ = tiny_llama
    windows = _windows(5)
    outs = []
    for bs in (1, 5):
        m = copy.deepcopy(model)
        prune_model(m, RunConfig(model="tiny-llama", method="sparsegpt", nsamples=5, seqlen=24, batch_size=bs), windows, progress=False)
        outs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.allclose(outs[0], outs[1], atol=1e-4)


@pytest.mark.parametrize("method,structure", [("magnitude", "unstructured"), ("wanda", "2:4"), ("sparsegpt", "4:8"),
                                              ("sparsegpt", "unstructured"), ("wanda-alpha", "unstructured")])
def test_methods_reach_target_sparsity(tiny_llama, method, structure):
    model = copy.deepcopy(tiny_llama[0])
    cfg = RunConfig(model="tiny-llama", method=method, structure=structure, sparsity=0.5, nsamples=2, seqlen=16)
    rep = prune_model(model, cfg, _windows(2, 16), progress=False)
    assert abs(rep["sparsity"]["overall"] - 0.5) < 0.01
    assert len(rep["sparsity"]["per_linear"]) == 2 * 7 and len(rep["sparsity"]["per_block"]) == 2
    # embeddings and the LM head are untouched
    assert (model.model.embed_tokens.weight == tiny_llama[0].model.embed_tokens.weight).all()
    if structure != "unstructured":
        n, m = map(int, structure.split(":"))
        for layer in find_linears(find_blocks(model)[0]).values():
            kept = (layer.weight != 0).reshape(layer.out_features, -1, m).sum(-1)
            assert (kept <= n).all()


def test_magnitude_needs_no_calibration(tiny_llama):
    model = copy.deepcopy(tiny_llama[0])
    rep = prune_model(model, RunConfig(model="tiny-llama", method="magnitude", sparsity=0.3), None, progress=False)
    assert rep["seconds"]["statistics_forward"] == 0
    dense = find_linears(find_blocks(tiny_llama[0])[1])
    for name, layer in find_linears(find_blocks(model)[1]).items():
        pruned, w0 = layer.weight == 0, dense[name].weight.abs()
        assert abs(pruned.float().mean().item() - 0.3) < 0.01
        assert w0[pruned].max() <= w0[~pruned].min()  # one threshold per layer: no kept weight is smaller


@torch.no_grad()
def _layer_inputs(model, windows, block=0, name="mlp.down_proj"):
    """What one Linear of the dense model receives for `windows` (the engine's statistics see
    exactly these in block 0, before any pruning)."""
    layer = find_linears(find_blocks(model)[block])[name]
    xs = []
    h = layer.register_forward_hook(lambda m, i, o: xs.append(i[0].reshape(-1, i[0].shape[-1]).float()))
    try:
        model(input_ids=windows)
    finally:
        h.remove()
    return torch.cat(xs), layer.weight.detach().float().clone()


@pytest.mark.parametrize("update", ["sequential", "iterative"])
def test_weight_update_variants(tiny_llama, update):
    windows = _windows(2, 16)
    X, W = _layer_inputs(tiny_llama[0], windows)
    pruned = {}
    for u in ("none", update):
        model = copy.deepcopy(tiny_llama[0])
        cfg = RunConfig(model="tiny-llama", method="wanda", weight_update=u, nsamples=2, seqlen=16, blocksize=32)
        rep = prune_model(model, cfg, windows, progress=False)
        assert abs(rep["sparsity"]["overall"] - 0.5) < 0.01
        assert all(torch.isfinite(p).all() for p in model.parameters())
        pruned[u] = find_linears(find_blocks(model)[0])["mlp.down_proj"].weight.detach().float()
    Wu, Wn = pruned[update], pruned["none"]
    mask = Wu == 0
    if update == "sequential":  # Wanda's mask, then the update: the same zeros as no update
        assert torch.equal(mask, Wn == 0)
    # the kept weights moved, and the layer reconstructs its dense output better than the same mask alone
    assert not torch.allclose(Wu[~mask], W[~mask])
    err = lambda Wp: ((X @ (W - Wp).t()) ** 2).sum().item()  # noqa: E731
    assert err(Wu) < 0.9 * err(W.masked_fill(mask, 0))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 1, bias=False)
        self.proj.weight.data = torch.tensor([[1.0, 2.0, 3.0, 4.0]])

    def forward(self, h):
        return self.proj(h)


class _OneLinearLM(nn.Module):
    """The smallest model the engine accepts: token 0 embeds to X = [100, 10, 1, 0.1], one block
    holding one Linear with W = [1, 2, 3, 4]."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1, 4)
        self.embed.weight.data = torch.tensor([[100.0, 10.0, 1.0, 0.1]])
        self.layers = nn.ModuleList([_Block()])

    def forward(self, input_ids, use_cache=False):
        h = self.embed(input_ids)
        for b in self.layers:
            h = b(h)
        return h


def _one_linear(method, **kw):
    model = _OneLinearLM()
    rep = prune_model(model, RunConfig(model="x", method=method, sparsity=0.5, nsamples=2, seqlen=3, **kw),
                      torch.zeros(2, 3, dtype=torch.long), progress=False)
    return model.layers[0].proj.weight.tolist()[0], rep["sparsity"]["overall"]


def test_prune_model_by_hand():
    # ||X_j|| is proportional to [100, 10, 1, 0.1], so |W| * ||X|| ~ [100, 20, 3, 0.4]: Wanda keeps the
    # first two weights; |W| alone keeps the last two.
    assert _one_linear("wanda") == ([1.0, 2.0, 0.0, 0.0], 0.5)
    assert _one_linear("magnitude", group="row") == ([0.0, 0.0, 3.0, 4.0], 0.5)
    assert _one_linear("wanda", score="magnitude") == ([0.0, 0.0, 3.0, 4.0], 0.5)


def test_paper_magnitude_baseline_by_hand():
    # the official rule on one 1x4 layer: thresh = sort(|W|)[int(4 * 0.5)] = 3, and every |W| <= 3
    # goes: only 4 is kept, and the record reports the sparsity actually reached, 0.75
    assert _one_linear("magnitude") == ([0.0, 0.0, 0.0, 4.0], 0.75)


def test_custom_score_plugs_in(tiny_llama):
    model = copy.deepcopy(tiny_llama[0])

    def squares(W, stats):
        return W.float() ** 2 * stats.input_sq_mean

    prune_model(model, RunConfig(model="tiny-llama", method="wanda", group="column", nsamples=2, seqlen=16),
                _windows(2, 16), score_fn=squares, progress=False)
    layer = find_linears(find_blocks(model)[0])["self_attn.q_proj"]
    assert ((layer.weight == 0).sum(0) == layer.out_features // 2).all()  # column groups


def test_bad_custom_score_is_named(tiny_llama):
    model = copy.deepcopy(tiny_llama[0])
    with pytest.raises(ValueError, match="returned shape"):
        prune_model(model, RunConfig(model="tiny-llama", method="wanda", nsamples=1, seqlen=8), _windows(1, 8),
                    score_fn=lambda W, s: W.sum(0), progress=False)


def test_sparsity_report_counts_zeros(tiny_llama):
    model = copy.deepcopy(tiny_llama[0])
    blocks = find_blocks(model)
    assert sparsity_report(model)["pruned_params"] == 0  # random weights: no exact zeros to start with
    q = find_linears(blocks[0])["self_attn.q_proj"].weight
    q.data[0, :10] = 0                                   # 10 zeros planted in block 0
    down = find_linears(blocks[1])["mlp.down_proj"].weight
    down.data.zero_()                                    # a whole Linear in block 1
    rep = sparsity_report(model)
    sizes = [sum(layer.weight.numel() for layer in find_linears(b).values()) for b in blocks]
    assert rep["prunable_params"] == sum(sizes)
    assert rep["pruned_params"] == 10 + down.numel()
    assert rep["overall"] == pytest.approx((10 + down.numel()) / sum(sizes))
    assert rep["per_block"] == [round(10 / sizes[0], 6), round(down.numel() / sizes[1], 6)]
    assert rep["per_linear"]["0.self_attn.q_proj"] == round(10 / q.numel(), 6)
    assert rep["per_linear"]["1.mlp.down_proj"] == 1.0 and rep["per_linear"]["1.mlp.up_proj"] == 0.0


@pytest.mark.parametrize("d", [1, 5, 7, 12])
def test_hessian_upper_block_triangle_then_mirror_is_the_full_gram(d):
    from wanda_core.prune.stats import add_gram_upper

    x = torch.randn(9, d, dtype=torch.float64)
    H = torch.zeros(d, d, dtype=torch.float64)
    add_gram_upper(H, x, 0.5)
    step = -(-d // 4)
    below = torch.arange(d)[None, :] < (torch.arange(d) // step * step)[:, None]  # left of each row's block
    assert torch.all(H[below] == 0)  # those multiply-adds were skipped
    full = H.triu() + H.triu(1).t()
    assert torch.allclose(full, 0.5 * x.t() @ x)
    H0 = torch.randn(d, d, dtype=torch.float64)  # the running mean's rescaling, inside the same products
    H1 = H0.clone()
    add_gram_upper(H1, x, 0.5, beta=0.25)
    assert torch.allclose(H1.triu(), (0.25 * H0 + 0.5 * x.t() @ x).triu())


def test_statistics_pass_ends_at_the_last_linear(tiny_llama):
    """From the second batch on, the statistics pass stops at the last Linear's input: its product
    is never computed there (a quarter of a Llama block's flops); the re-forward runs it for every
    batch. The statistics themselves are unchanged (tests/test_engine_reference.py, bit for bit)."""
    model, _, _ = tiny_llama
    model = copy.deepcopy(model)
    calls = []
    last = find_blocks(model)[0].mlp.down_proj
    h = last.register_forward_hook(lambda *_: calls.append(1))  # runs only when the product is computed
    cfg = RunConfig(model="tiny-llama", method="wanda", nsamples=5, seqlen=24, batch_size=2)
    prune_model(model, cfg, _windows(5, 24), progress=False)
    h.remove()
    assert len(calls) == 1 + 3  # statistics pass: the first of 3 batches only; re-forward: all 3
