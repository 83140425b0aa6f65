"""The parts of a model the paper prunes: its decoder blocks and the Linear layers inside them, and
the one walk over the blocks that both the prune and OWL's outlier pass make."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn
from tqdm import tqdm

from wanda_core.prune.placement import activation_home, block_device, move_block, to_device


def find_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks: the ModuleList holding most of the parameters (works for LLaMA,
    Mistral, Qwen2, Gemma, OPT, GPT-NeoX, BLOOM, GPT-2 alike)."""
    best, best_n = None, 0
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            n = sum(p.numel() for p in mod.parameters())
            if n > best_n:
                best, best_n = mod, n
    if best is None:
        raise ValueError(f"no decoder blocks (nn.ModuleList) found in {type(model).__name__}")
    return best


def find_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear inside a block, by its name within the block (the layers the paper prunes)."""
    return {name: m for name, m in block.named_modules() if isinstance(m, nn.Linear)}


class Stop(Exception):
    """Raised by a hook to end a forward pass early (nothing after the hook is needed)."""


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def capture_block_inputs(model: nn.Module, windows: torch.Tensor, batch_size: int):
    """(inputs of block 0 for every window, per-block (args, kwargs) for a batch of one)."""
    blocks = find_blocks(model)
    emb = getattr(model, "get_input_embeddings", None)  # under a device_map: where the ids go in
    device = emb().weight.device if emb is not None else next(model.parameters()).device
    inps: list[torch.Tensor] = []

    def grab_first(_mod, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        inps.append(h.detach())
        raise Stop

    handle = blocks[0].register_forward_pre_hook(grab_first, with_kwargs=True)
    try:
        for i in range(0, len(windows), batch_size):
            try:
                model(input_ids=windows[i : i + batch_size].to(device), use_cache=False)
            except Stop:
                pass
    finally:
        handle.remove()

    # Each block's other arguments, seen once with a batch of one window: tensors in them have
    # batch size 1 and broadcast over any batch. The blocks are stood in for by a stub that passes
    # its input through, so this costs no block computation (an offloaded model never runs on CPU).
    per_block: list[Any] = [None] * len(blocks)

    def stub(idx):
        def forward(*args, **kwargs):
            per_block[idx] = (args[1:], {k: v for k, v in kwargs.items() if k != "hidden_states"})
            if idx == len(blocks) - 1:
                raise Stop
            return args[0] if args else kwargs["hidden_states"]

        return forward

    saved = [b.__dict__.get("forward") for b in blocks]  # accelerate's hooks wrap forward per instance
    try:
        for i, b in enumerate(blocks):
            b.forward = stub(i)
        model(input_ids=windows[:1].to(device), use_cache=False)
    except Stop:
        pass
    finally:
        for b, f in zip(blocks, saved):
            if f is None:
                del b.forward
            else:
                b.forward = f
    return torch.cat(inps), per_block


def run_block(block, inps: torch.Tensor, extra, batch_size: int, out: torch.Tensor | None = None):
    """The block over all windows, a batch at a time; inputs and arguments go to the block's device.
    Without `out` (a statistics pass) a hook may end a batch early with Stop."""
    dev = block_device(block)
    rest, kw = to_device(extra, dev)
    for i in range(0, len(inps), batch_size):
        try:
            o = block(inps[i : i + batch_size].to(dev, non_blocking=True), *rest, **kw)
        except Stop:
            if out is not None:
                raise
            continue
        o = o[0] if isinstance(o, (tuple, list)) else o
        if out is not None:
            out[i : i + batch_size].copy_(o, non_blocking=True)
    return out



class Activations:
    """The calibration windows as the current block sees them: its inputs, and a buffer of the same
    shape for its outputs (the two swap roles block after block, so later blocks see the errors of
    earlier ones). Captured once at block 0; they live on `device`, or in pinned CPU memory when an
    offloaded model's activations do not fit there (placement.activation_home)."""

    def __init__(self, model: nn.Module, windows: torch.Tensor, batch_size: int, device: torch.device,
                 offload: bool):
        inps, self.extras = capture_block_inputs(model, windows, batch_size)
        self.home = activation_home(inps, device) if offload else inps.device
        self.inps = inps.pin_memory() if self.home == "pinned" else inps.to(self.home)
        outs = torch.empty_like(self.inps)
        self.outs = outs.pin_memory() if self.home == "pinned" else outs
        self.batch_size = batch_size

    def follow(self, block: nn.Module) -> None:
        """Under a device_map the activations go where the block lives."""
        if self.home != "pinned" and self.inps.device != block_device(block):
            self.inps, self.outs = self.inps.to(block_device(block)), self.outs.to(block_device(block))

    def read(self, bi: int, block: nn.Module) -> None:
        """Run the block for its hooks only (a statistics pass: outputs discarded, may end early)."""
        run_block(block, self.inps, self.extras[bi], self.batch_size)
        sync(block_device(block))

    def advance(self, bi: int, block: nn.Module) -> None:
        """Run the block; its outputs become the next block's inputs."""
        run_block(block, self.inps, self.extras[bi], self.batch_size, self.outs)
        sync(block_device(block))
        self.inps, self.outs = self.outs, self.inps


def walk_blocks(model: nn.Module, device: torch.device, offload: bool, desc: str,
                progress: bool = True) -> Iterator[tuple[int, nn.Module]]:
    """The one walk over the decoder blocks, in order, with a progress bar: (index, block), the block
    brought to `device` while it is yielded when the model is offloaded, and sent back after."""
    blocks = find_blocks(model)
    for bi in tqdm(range(len(blocks)), desc=desc, disable=not progress, leave=False):
        block = blocks[bi]
        back = move_block(block, device) if offload else None
        yield bi, block
        if back is not None:
            back()
