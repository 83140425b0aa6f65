"""2:4 weights for the speed-up suite: LLaMA layer shapes, random 2:4 weights, their compressed
forms (cuSPARSELt, CUTLASS) and the numerical check that runs before anything is timed.

    w = make_24_weight(4096, 4096, "float16", "cuda")     # 2 zeros in every 4 along the input
    ws = to_sparse(w, "cusparselt")                         # torch's SparseSemiStructuredTensor
    check_sparse_matches_dense(w, "cusparselt")             # raises SparseMismatch if they differ
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wanda_core.prune.masks import nm_mask
from wanda_core.gpu.speedup.device import require_gpu

# name: (hidden, intermediate, attention heads, decoder layers), from the LLaMA-1 configs
LLAMA_DIMS = {
    "7B": (4096, 11008, 32, 32),
    "13B": (5120, 13824, 40, 40),
    "30B": (6656, 17920, 52, 60),
    "65B": (8192, 22016, 64, 80),
}
LAYER_TYPES = ("q", "k", "v", "o", "gate", "up", "down")
# layer types that share a shape are timed once, under the group's name
LAYER_GROUPS = {"q/k/v/o": ("q", "k", "v", "o"), "gate/up": ("gate", "up"), "down": ("down",)}
BACKENDS = ("dense", "cusparselt", "cutlass")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def linear_shapes(model: str, dims: dict | None = None) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each linear layer type in one LLaMA decoder block."""
    h, i, _, _ = (dims or LLAMA_DIMS)[model]
    return {"q": (h, h), "k": (h, h), "v": (h, h), "o": (h, h), "gate": (i, h), "up": (i, h), "down": (h, i)}


LLAMA_SHAPES = {m: linear_shapes(m) for m in LLAMA_DIMS}


class SparseMismatch(RuntimeError):
    """The semi-structured sparse product disagrees with the dense product of the same weight."""


def dtype_of(d: str | torch.dtype) -> torch.dtype:
    return d if isinstance(d, torch.dtype) else DTYPES[d]


def dtype_name(d: str | torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def make_24_weight(out_features: int, in_features: int, dtype: str | torch.dtype = torch.float16,
                   device: str | torch.device = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """A random (out, in) weight with a valid 2:4 mask along the input dimension (2 zeros in every 4)."""
    w = torch.randn(out_features, in_features, device=device, generator=generator) * in_features ** -0.5
    w = torch.where(w == 0, 1e-3, w)  # an exact 0 from randn would leave a block with one non-zero
    return w.masked_fill_(nm_mask(w.abs(), 2, 4), 0.0).to(dtype_of(dtype)).contiguous()


def _sparse_classes() -> dict[str, type]:
    import torch.sparse as ts

    return {"cusparselt": ts.SparseSemiStructuredTensorCUSPARSELT, "cutlass": ts.SparseSemiStructuredTensorCUTLASS}


def to_sparse(weight: torch.Tensor, backend: str = "cusparselt") -> torch.Tensor:
    """Compress a 2:4 weight for `backend`; "dense" returns it unchanged."""
    if backend == "dense":
        return weight
    if backend not in ("cusparselt", "cutlass"):
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    from torch.sparse import SparseSemiStructuredTensor as S, to_sparse_semi_structured

    # the flag is read once, at conversion: the subclass it picks fixes the matmul kernel for good
    old, S._FORCE_CUTLASS = S._FORCE_CUTLASS, backend == "cutlass"
    try:
        ws = to_sparse_semi_structured(weight)
    finally:
        S._FORCE_CUTLASS = old
    if getattr(ws, "BACKEND", backend) != backend:
        raise RuntimeError(f"asked for the {backend} backend but torch built a {type(ws).__name__}")
    return ws


def padded_rows(tokens: int, dtype: str | torch.dtype = torch.float16) -> int:
    """Rows of the activation matrix the sparse kernels accept: `tokens` rounded up to every backend's
    minimum multiple (torch >= 2.3 pads internally; we pad up front so dense and sparse see equal work)."""
    align = 1
    for cls in _sparse_classes().values():
        c = getattr(cls, "_DTYPE_SHAPE_CONSTRAINTS", {}).get(dtype_of(dtype))
        align = math.lcm(align, c.dense_min_rows if c is not None else 64)
    return -(-tokens // align) * align


def compare(y_sparse: torch.Tensor, y_dense: torch.Tensor, what: str = "sparse product") -> float:
    """Max |difference| relative to max |dense|; raises SparseMismatch beyond fp16/bf16 rounding."""
    if y_sparse.shape != y_dense.shape:
        raise SparseMismatch(f"{what}: shape {tuple(y_sparse.shape)} != dense {tuple(y_dense.shape)}")
    tol = {torch.float16: 1e-2, torch.bfloat16: 4e-2}.get(y_dense.dtype, 1e-4)
    scale = y_dense.float().abs().max().clamp_min(1e-6)
    err = float((y_sparse.float() - y_dense.float()).abs().max() / scale)
    if not err <= tol:  # also catches NaN
        raise SparseMismatch(
            f"{what} differs from the dense product of the same masked weight: max relative error "
            f"{err:.3g} > {tol:g} for {y_dense.dtype}; refusing to time a kernel that computes something else")
    return err


def check_sparse_matches_dense(weight: torch.Tensor, backend: str = "cusparselt", rows: int = 64,
                               sparse: torch.Tensor | None = None) -> float:
    """Check that `F.linear` with the compressed weight equals the dense one on random inputs.

    Returns the max relative error; raises SparseMismatch if it exceeds the dtype's tolerance.
    """
    require_gpu()
    sparse = to_sparse(weight, backend) if sparse is None else sparse
    x = torch.randn(padded_rows(rows, weight.dtype), weight.shape[1], device=weight.device, dtype=weight.dtype)
    return compare(F.linear(x, sparse), F.linear(x, weight), f"{backend} {tuple(weight.shape)} {dtype_name(weight.dtype)}")
