"""Where tensors live while the engine prunes: a block's device, block offload, activations' home.

    back = move_block(block, torch.device("cuda"))   # the block's weights copied to the GPU
    ...                                               # statistics, pruning, re-forward there
    back()                                            # written back into the CPU tensors, in place

Offload keeps a model's weights in CPU memory and brings one block at a time to the device; under
accelerate's device_map each block computes where it lives and its inputs follow it (`to_device`).
"""
from __future__ import annotations

import torch
from torch import nn


def to_device(obj, device):
    """`obj` (tensors inside tuples, lists, dicts) on `device`; other values as they are."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def block_device(block: nn.Module) -> torch.device:
    """Where a block computes: its parameters' device (per block under accelerate's device_map)."""
    return next(block.parameters()).device


def move_block(block: nn.Module, device: torch.device):
    """Copy a block's parameters and buffers to `device` (block offload); returns a function that
    writes them back into their original CPU tensors, in place, so that no second copy of the
    weights is ever made on the host (memory-mapped weights stay mapped)."""
    homes = []
    for mod in block.modules():
        for store in (mod._parameters, mod._buffers):
            for t in store.values():
                if t is not None and not any(t is h for h, _ in homes):
                    homes.append((t, t.data))
                    t.data = t.data.to(device, copy=True)  # a real copy even on CPU: the path is tested there

    def back():
        for t, home in homes:
            home.copy_(t.data)
            t.data = home

    return back


def activation_home(like: torch.Tensor, device: torch.device) -> torch.device | str:
    """Calibration activations (inputs and outputs of a block) stay on the device when both fit in
    half its free memory, else in pinned CPU memory (a batch at a time goes up)."""
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if 2 * like.numel() * like.element_size() < free // 2 else "pinned"
