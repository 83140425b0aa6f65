"""A LLaMA-shaped decoder stack in plain PyTorch, whose linear weights switch between dense and 2:4.

RMSNorm, rotary multi-head attention through `F.scaled_dot_product_attention`, SwiGLU MLP,
residuals: the blocks of Hugging Face's LLaMA (the tests check the forward against it), with no
embedding, final norm or LM head. Used to time prefill and decode end to end with 2:4 weights.

    st = build_stack("7B", "float16", "cuda")    # 32 blocks of random 2:4 weights
    st.use("cusparselt")                          # every linear compressed, each checked once
    y = st(x)                                     # prefill; st.setup_cache(b, n); st(x, decode=True)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wanda_core.gpu.speedup.sparse24 import (LLAMA_DIMS, check_sparse_matches_dense, compare, dtype_of, make_24_weight,
                                             padded_rows, to_sparse)


class SwapLinear(nn.Module):
    """Bias-free linear whose weight switches between the dense masked matrix and its 2:4 forms."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.forms = {"dense": weight}
        self.weight = weight

    def use(self, backend: str = "dense", verify: bool = True) -> None:
        if backend not in self.forms:
            ws = to_sparse(self.forms["dense"], backend)
            if verify:  # before caching it, so a form that failed is never used later unchecked
                check_sparse_matches_dense(self.forms["dense"], backend, rows=16, sparse=ws)
            self.forms[backend] = ws
        self.weight = self.forms[backend]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is self.forms["dense"]:
            return F.linear(x, self.weight)
        # The 2:4 kernels take a 2-D, row-padded input (a 3-D one reaches ops the sparse tensor lacks,
        # such as expand), and return the product transposed in memory: made contiguous here, or every
        # later op (SDPA's fused kernels above all) would run on strided data.
        x2 = x.reshape(-1, x.shape[-1])
        n = x2.shape[0]
        rows = padded_rows(n, x.dtype)
        if rows != n:
            x2 = F.pad(x2, (0, 0, 0, rows - n))
        y = F.linear(x2.contiguous(), self.weight)[:n].contiguous()
        return y.view(*x.shape[:-1], y.shape[-1])


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, **kw):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim, **kw), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_tables(head_dim: int, max_pos: int, base: float = 10000.0, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=kw.get("device")).float() / head_dim)
    f = torch.outer(torch.arange(max_pos, device=kw.get("device")).float(), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos().to(kw.get("dtype")), emb.sin().to(kw.get("dtype"))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, -1)  # Hugging Face LLaMA's rotate-half layout
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    """LLaMA block: RMSNorm, rotary multi-head attention (SDPA), RMSNorm, SwiGLU MLP; residuals."""

    def __init__(self, dim: int, inter: int, heads: int, dtype: torch.dtype, device, generator=None):
        super().__init__()
        mk = lambda o, i: SwapLinear(make_24_weight(o, i, dtype, device, generator))  # noqa: E731
        self.heads = heads
        self.q, self.k, self.v, self.o = mk(dim, dim), mk(dim, dim), mk(dim, dim), mk(dim, dim)
        self.gate, self.up, self.down = mk(inter, dim), mk(inter, dim), mk(dim, inter)
        self.attn_norm, self.mlp_norm = (RMSNorm(dim, dtype=dtype, device=device) for _ in range(2))
        self.cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, decode: bool = False) -> torch.Tensor:
        b, t, d = x.shape
        y = self.attn_norm(x)
        q, k, v = (lin(y).view(b, t, self.heads, d // self.heads).transpose(1, 2) for lin in (self.q, self.k, self.v))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if decode:  # the new token takes the cache's last slot and attends to all of it
            kc, vc = self.cache[0][:b], self.cache[1][:b]
            kc[:, :, -t:], vc[:, :, -t:] = k, v
            a = F.scaled_dot_product_attention(q, kc, vc)
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        y = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class DecoderStack(nn.Module):
    """`n_layers` LLaMA blocks: hidden states in, hidden states out (no embedding, final norm or LM head)."""

    def __init__(self, dim: int, inter: int, heads: int, n_layers: int, dtype: str | torch.dtype = torch.float16,
                 device: str | torch.device = "cpu", seed: int = 0, max_pos: int = 4096):
        super().__init__()
        dt = dtype_of(dtype)
        g = torch.Generator(device=device).manual_seed(seed)
        self.dim, self.heads, self.max_pos, self.kv_len = dim, heads, max_pos, 0
        self.layers = nn.ModuleList(Block(dim, inter, heads, dt, device, g) for _ in range(n_layers))
        cos, sin = rope_tables(dim // heads, max_pos, dtype=dt, device=device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def use(self, backend: str = "dense", verify: bool = True) -> None:
        """Swap every linear weight to `backend` ("dense", "cusparselt", "cutlass"), checking each once."""
        for m in self.modules():
            if isinstance(m, SwapLinear):
                m.use(backend, verify)

    @torch.no_grad()
    def check_block(self, x: torch.Tensor, backend: str, decode: bool = False) -> float:
        """The first block's output with `backend` weights against its dense output on the same input:
        each weight was checked alone, this checks the way the block feeds them (shapes, padding, layout).
        Leaves the block on `backend`; raises SparseMismatch if the outputs differ."""
        blk, t = self.layers[0], x.shape[1]
        start = self.kv_len - t if decode else 0
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        lins = [m for m in blk.modules() if isinstance(m, SwapLinear)]
        for m in lins:
            m.use("dense")
        ref = blk(x, cos, sin, decode)
        for m in lins:
            m.use(backend)
        return compare(blk(x, cos, sin, decode), ref, f"{backend} decoder block ({'decode' if decode else 'prefill'})")

    def setup_cache(self, max_batch: int, kv_len: int) -> None:
        if self.kv_len == kv_len and self.layers[0].cache is not None and self.layers[0].cache[0].shape[0] >= max_batch:
            return
        shape = (max_batch, self.heads, kv_len, self.dim // self.heads)
        for blk in self.layers:
            blk.cache = None  # free the old cache before allocating the new one
            blk.cache = (torch.zeros(shape, dtype=self.cos.dtype, device=self.cos.device),
                         torch.zeros(shape, dtype=self.cos.dtype, device=self.cos.device))
        self.kv_len = kv_len

    def forward(self, x: torch.Tensor, decode: bool = False) -> torch.Tensor:
        t = x.shape[1]
        start = self.kv_len - t if decode else 0
        if decode and self.layers[0].cache is None:
            raise RuntimeError("decode needs setup_cache(max_batch, kv_len) first")
        if start < 0 or start + t > self.max_pos:
            raise ValueError(f"positions {start}..{start + t} outside the rotary table (max_pos={self.max_pos})")
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        for blk in self.layers:
            x = blk(x, cos, sin, decode)
        return x


def build_stack(model: str = "7B", dtype: str | torch.dtype = "float16", device: str | torch.device = "cuda",
                n_layers: int | None = None, seed: int = 0, dims: dict | None = None) -> DecoderStack:
    """The decoder stack of `model` (a key of `dims`, LLAMA_DIMS by default; the rehearsal passes tiny dims)."""
    h, i, heads, layers = (dims or LLAMA_DIMS)[model]
    return DecoderStack(h, i, heads, n_layers or layers, dtype, device, seed)
