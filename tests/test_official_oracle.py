"""Wanda's masks against an oracle written from the official implementation's arithmetic.

The oracle does what locuslab/wanda's `prune_wanda` does, step for step: each calibration window
runs through a block on its own (a batch of one), a forward hook on every Linear keeps the official
running statistic (`scaler_row *= n / (n + 1); n += 1; scaler_row += ||x_j||^2 / n`, the squared
l2 norm of input feature j over the window's tokens, via `torch.norm(...) ** 2`), the score is
|W| * sqrt(scaler_row), and the mask is the first half of a stable ascending sort per output row
(unstructured) or the two lowest of every four by `torch.topk` (2:4). The engine batches windows,
keeps a per-token mean and selects by k-th value: different arithmetic that must choose the same
weights. A speed-up that changes which weights are pruned fails here."""
import copy
import functools

import pytest
import torch

from wanda_core import RunConfig
from wanda_core.models.loaders import load_model
from wanda_core.prune.blocks import capture_block_inputs, find_blocks, find_linears
from wanda_core.prune.engine import prune_model

ARCHS = ["tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3"]


@torch.no_grad()
def official_wanda(model, windows, sparsity, nm=None):
    """Prune `model` in place with the official algorithm; returns {block.linear: mask}."""
    inps, extras = capture_block_inputs(model, windows, 1)
    outs, masks = torch.empty_like(inps), {}
    for bi, block in enumerate(find_blocks(model)):
        linears = find_linears(block)
        scaler = {n: torch.zeros(lin.weight.shape[1]) for n, lin in linears.items()}
        seen = dict.fromkeys(linears, 0)

        def add_batch(name):
            def hook(_mod, inp, _out):
                x = inp[0].data
                x = x.unsqueeze(0) if x.dim() == 2 else x
                tmp = x.shape[0]
                x = x.reshape(-1, x.shape[-1]).t()
                scaler[name] *= seen[name] / (seen[name] + tmp)
                seen[name] += tmp
                scaler[name] += torch.norm(x.type(torch.float32), p=2, dim=1) ** 2 / seen[name]
            return hook

        rest, kw = extras[bi]
        handles = [lin.register_forward_hook(add_batch(n)) for n, lin in linears.items()]
        for j in range(len(inps)):
            block(inps[j].unsqueeze(0), *rest, **kw)
        for h in handles:
            h.remove()
        for name, lin in linears.items():
            metric = torch.abs(lin.weight.data) * torch.sqrt(scaler[name].reshape((1, -1)))
            mask = torch.zeros_like(metric) == 1
            if nm:
                n, m = nm
                for ii in range(0, metric.shape[1], m):
                    group = metric[:, ii:ii + m].float()
                    mask.scatter_(1, ii + torch.topk(group, m - n, dim=1, largest=False)[1], True)
            else:
                order = torch.sort(metric, dim=-1, stable=True)[1]
                mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
            lin.weight.data[mask] = 0
            masks[f"{bi}.{name}"] = mask
        for j in range(len(inps)):
            o = block(inps[j].unsqueeze(0), *rest, **kw)
            outs[j] = (o[0] if isinstance(o, (tuple, list)) else o)[0]
        inps, outs = outs, inps
    return masks


@functools.lru_cache(maxsize=None)
def _tiny(name):
    return load_model(name)[0]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_engine_masks_equal_the_official_algorithm(name, structure):
    windows = torch.randint(0, 1000, (4, 32), generator=torch.Generator().manual_seed(7))
    cfg = RunConfig(model=name, method="wanda", sparsity=0.5, structure=structure, nsamples=4, seqlen=32, batch_size=3)
    model, oracle = copy.deepcopy(_tiny(name)), copy.deepcopy(_tiny(name))
    prune_model(model, cfg, windows, progress=False)
    masks = official_wanda(oracle, windows, 0.5, (2, 4) if structure == "2:4" else None)
    for bi, (block, ref) in enumerate(zip(find_blocks(model), find_blocks(oracle))):
        for (n, lin), (_, ref_lin) in zip(find_linears(block).items(), find_linears(ref).items()):
            differ = int(((lin.weight == 0) != masks[f"{bi}.{n}"]).sum())
            assert differ == 0, f"{name} {structure}: block {bi} {n}: {differ} weights chosen differently"
            assert torch.equal(lin.weight, ref_lin.weight)
