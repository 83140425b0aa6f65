"""The optimised engine against a straightforward reference on the tiny models of every architecture:
bit for bit for magnitude and Wanda (masks and weights), within float tolerance for SparseGPT.

The reference is the engine as it was before the speed work (issue 13): one forward hook per
Linear (q, k and v each gather the same statistics), a full forward to find each block's
arguments, new weight tensors, SparseGPT's column loop on W itself, column by column, as in
the official code. Same calibration batches, so the same floating-point sums."""
import copy
import functools

import pytest
import torch

from wanda_core import RunConfig
from wanda_core.prune.engine import prune_model
from wanda_core.prune.masks import nm_mask, structure_mask, unstructured_mask
from wanda_core.models.loaders import load_model
from wanda_core.prune.blocks import find_blocks, find_linears
from wanda_core.prune.scores import LayerStats, get_score

ARCHS = ["tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3"]


def ref_sparsegpt(W, H, sparsity, nm, blocksize, percdamp):
    W = W.clone().float()
    cols = W.shape[1]
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(percdamp * torch.mean(torch.diag(H)))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    mask = torch.zeros_like(W, dtype=torch.bool)
    for b0 in range(0, cols, blocksize):
        b1 = min(b0 + blocksize, cols)
        W1, Hinv1 = W[:, b0:b1].clone(), Hinv[b0:b1, b0:b1]
        d, Err1 = torch.diag(Hinv1), torch.zeros_like(W[:, b0:b1])
        mask1 = unstructured_mask(W1**2 / d**2, sparsity, "layer") if not nm else torch.zeros_like(W1, dtype=torch.bool)
        for i in range(b1 - b0):
            if nm and i % nm[1] == 0:
                mask1[:, i : i + nm[1]] = nm_mask(W1[:, i : i + nm[1]] ** 2 / d[i : i + nm[1]] ** 2, *nm)
            q = W1[:, i].clone()
            q[mask1[:, i]] = 0
            err = (W1[:, i] - q) / d[i]
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W1[mask1] = 0
        W[:, b0:b1], mask[:, b0:b1] = W1, mask1
        W[:, b1:] -= Err1 @ Hinv[b0:b1, b1:]
    W[mask] = 0
    return W


@torch.no_grad()
def reference_prune(model, cfg, windows):
    blocks = find_blocks(model)
    if cfg.needs_calibration:
        inps, extras = [], [None] * len(blocks)

        def first(_m, args, kw):
            inps.append(args[0] if args else kw["hidden_states"])
            raise KeyboardInterrupt

        def kwargs_of(i):
            def hook(_m, args, kw):
                extras[i] = (args[1:], {k: v for k, v in kw.items() if k != "hidden_states"})
            return hook

        h = blocks[0].register_forward_pre_hook(first, with_kwargs=True)
        for i in range(0, len(windows), cfg.batch_size):
            try:
                model(input_ids=windows[i : i + cfg.batch_size])
            except KeyboardInterrupt:
                pass
        h.remove()
        hs = [b.register_forward_pre_hook(kwargs_of(i), with_kwargs=True) for i, b in enumerate(blocks)]
        model(input_ids=windows[:1])  # the whole model, once
        for h in hs:
            h.remove()
        inps = torch.cat(inps)
    for bi, block in enumerate(blocks):
        stats = {n: LayerStats(input_sq_mean=torch.zeros(l.in_features), hessian=torch.zeros(l.in_features, l.in_features))
                 for n, l in find_linears(block).items()}

        def acc(name):
            def hook(_m, inp, _o):
                x = inp[0].reshape(-1, inp[0].shape[-1]).float()
                st, n, t = stats[name], stats[name].tokens, inp[0].reshape(-1, inp[0].shape[-1]).shape[0]
                st.input_sq_mean.mul_(n / (n + t)).add_(x.pow(2).sum(0), alpha=1 / (n + t))
                st.hessian.mul_(n / (n + t)).addmm_(x.t(), x, alpha=2 / (n + t))
                st.tokens = n + t
            return hook

        def run(out=None):
            rest, kw = extras[bi]
            for i in range(0, len(inps), cfg.batch_size):
                o = block(inps[i : i + cfg.batch_size], *rest, **kw)
                o = o[0] if isinstance(o, (tuple, list)) else o
                if out is not None:
                    out[i : i + cfg.batch_size] = o
            return out

        if cfg.needs_calibration:
            hs = [l.register_forward_hook(acc(n)) for n, l in find_linears(block).items()]
            run()
            for h in hs:
                h.remove()
        for name, layer in find_linears(block).items():
            W = layer.weight.data
            if cfg.method == "sparsegpt":
                Wn = ref_sparsegpt(W, stats[name].hessian, cfg.target_sparsity, cfg.nm, cfg.blocksize, cfg.percdamp)
            else:
                s = get_score(cfg.effective_score)(W.float(), stats[name])
                Wn = W.masked_fill(structure_mask(s, cfg.target_sparsity, cfg.effective_group, cfg.nm, cfg.mask_rule), 0)
            layer.weight.data = Wn.to(W.dtype)
        if cfg.needs_calibration:
            inps = run(torch.empty_like(inps))


@functools.lru_cache(maxsize=None)
def _tiny(name):
    return load_model(name)[0]


def _pair(name, **kw):
    model = copy.deepcopy(_tiny(name))
    windows = torch.randint(0, 1000, (5, 40), generator=torch.Generator().manual_seed(1))
    cfg = RunConfig(model=name, nsamples=5, seqlen=40, batch_size=2, blocksize=32, **kw)
    ref = copy.deepcopy(model)
    prune_model(model, cfg, windows, progress=False)
    reference_prune(ref, cfg, windows)
    return model, ref


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("method,structure", [("wanda", "unstructured"), ("wanda", "2:4"), ("magnitude", "unstructured")])
def test_wanda_and_magnitude_bit_for_bit(name, method, structure):
    model, ref = _pair(name, method=method, structure=structure)
    for (n1, a), (n2, b) in zip(model.named_parameters(), ref.named_parameters()):
        assert n1 == n2 and torch.equal(a, b), f"{name} {method} {structure}: {n1} differs from the reference"


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_sparsegpt_within_float_tolerance(name, structure):
    model, ref = _pair(name, method="sparsegpt", structure=structure)
    for (n1, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"{name}: {n1} max diff {(a - b).abs().max():.2e}"
        assert ((a == 0) == (b == 0)).float().mean() > 0.999, f"{name}: {n1} masks differ"
