"""Block offload and blocks on several devices, tested on the CPU: offloading to the CPU itself takes
the same code path as to a GPU (each block copied to the "device", pruned there, written back in
place into its CPU tensors), so its results must equal the ordinary engine's bit for bit."""
import copy

import pytest
import torch
from torch import nn

from wanda_core import RunConfig
from wanda_core.prune.blocks import run_block
from wanda_core.prune.engine import prune_model
from wanda_core.prune.placement import block_device, move_block, to_device
from wanda_core.models.loaders import load_model
from wanda_core.prune.blocks import find_blocks


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_offload_equals_the_engine(name, method):
    model, _, _ = load_model(name)
    windows = torch.randint(0, 1000, (3, 24), generator=torch.Generator().manual_seed(2))
    cfg = RunConfig(model=name, method=method, nsamples=3, seqlen=24, batch_size=2, blocksize=32)
    off = copy.deepcopy(model)
    homes = {n: p.data_ptr() for n, p in off.named_parameters()}
    prune_model(model, cfg, windows, progress=False)
    rep = prune_model(off, cfg.replace(offload=True), windows, progress=False)
    assert abs(rep["sparsity"]["overall"] - 0.5) < 0.01
    for (n, a), (_, b) in zip(model.named_parameters(), off.named_parameters()):
        assert torch.equal(a, b), f"{name} {method}: {n} differs with offload"
        assert b.data_ptr() == homes[n], f"{n}: offload replaced the CPU tensor instead of writing back into it"


def test_move_block_copies_and_writes_back_in_place():
    block = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    home = block[0].weight.data
    back = move_block(block, torch.device("cpu"))
    assert block[0].weight.data_ptr() != home.data_ptr()  # a real copy while "on the device"
    block[0].weight.data.zero_()
    back()
    assert block[0].weight.data_ptr() == home.data_ptr() and (home == 0).all()


class _Recorder(nn.Module):
    """A block on the meta device that records where its inputs arrive."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(2, device="meta"))
        self.seen = []

    def forward(self, h, cos_sin, attention_mask=None):
        self.seen.append((h.device, cos_sin[0].device, attention_mask.device))
        return (h,)


def test_inputs_follow_each_block_to_its_device():
    block = _Recorder()
    assert block_device(block) == torch.device("meta")
    inps = torch.randn(5, 3, 2)
    extra = ((torch.randn(1, 3, 2), torch.randn(1, 3, 2)),), {"attention_mask": torch.zeros(1, 1, 3, 3)}
    run_block(block, inps, extra, batch_size=2)
    assert block.seen == [(torch.device("meta"),) * 3] * 3  # batches of 2, 2, 1
    moved = to_device({"a": [torch.ones(1)], "b": (torch.ones(1), None, 3)}, torch.device("meta"))
    assert moved["a"][0].is_meta and moved["b"][0].is_meta and moved["b"][1:] == (None, 3)


def test_blocks_on_two_devices_prune_like_one(tiny_llama):
    """accelerate's device_map over two CPU "devices": each block prunes where it lives."""
    from accelerate import dispatch_model

    model = copy.deepcopy(tiny_llama[0])
    split = dispatch_model(copy.deepcopy(model), device_map={"model.embed_tokens": "cpu", "model.layers.0": "cpu",
                                                             "model.layers.1": "cpu", "model.norm": "cpu",
                                                             "model.rotary_emb": "cpu", "lm_head": "cpu"})
    windows = torch.randint(0, 1000, (3, 16), generator=torch.Generator().manual_seed(3))
    cfg = RunConfig(model="tiny-llama", method="wanda", nsamples=3, seqlen=16, batch_size=2)
    prune_model(model, cfg, windows, progress=False)
    prune_model(split, cfg, windows, progress=False)
    assert len(find_blocks(split)) == 2
    for (n, a), (_, b) in zip(model.named_parameters(), split.named_parameters()):
        assert torch.equal(a, b), n
