"""2:4 speed-up on NVIDIA sparse tensor cores: timed LLaMA linear layers and a LLaMA-shaped decoder stack.

The paper's practical claim (arXiv 2306.11695) is that 2:4 masks are not only smaller but faster:
about 1.6x on LLaMA-7B's linear layers and 1.24x end-to-end latency, on an RTX A6000. This module
measures the same thing with PyTorch's semi-structured sparse tensors (`to_sparse_semi_structured`,
backends cuSPARSELt and CUTLASS) against the dense matmul with the *same* masked weight:

- `time_linear`: one LLaMA linear shape (7B..65B), a token count, a dtype and a backend;
- `time_decoder_stack`: 32 LLaMA-7B-shaped blocks (RMSNorm, rotary attention through
  `F.scaled_dot_product_attention`, SwiGLU MLP; no embedding or LM head), prefill and decode;
- `run_all`: everything, written as JSON run records to `results/speedup/` (one per family);
- `load_results`, `speedup_table`, `PAPER_SPEEDUP`: what the book reads.

Run on a machine with an NVIDIA GPU of compute capability 8.0 or newer (Ampere, Ada, Hopper):

    python -m wanda_core.speedup --out results/speedup            # full run, a few minutes on an H100
    python -m wanda_core.speedup --out /tmp/speedup --quick       # smoke check: 7B only, few repeats

Without such a GPU every measurement entry point raises `SpeedupUnavailable`; reading committed
records works everywhere. Weight values are random (timing does not depend on them) but every
sparse product is checked against the dense one before it is timed.

Timing: CUDA events around a batch of calls, repeated; we report the median and p10/p90 per call.
Mode "eager" launches from Python as a user would (host overhead included, which matters for small
token counts and for the per-call cuSPARSELt plan set-up in PyTorch); mode "graph" replays the same
calls from a CUDA graph, which leaves mostly GPU time. Small weights are cycled through several
copies so that they do not sit in L2 between calls (a real model streams each weight once).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from wanda_core.masks import nm_mask
from wanda_core.records import atomic_write_json, provenance

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


def linear_shapes(model: str) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each linear layer type in one LLaMA decoder block."""
    h, i, _, _ = LLAMA_DIMS[model]
    return {"q": (h, h), "k": (h, h), "v": (h, h), "o": (h, h), "gate": (i, h), "up": (i, h), "down": (h, i)}


LLAMA_SHAPES = {m: linear_shapes(m) for m in LLAMA_DIMS}
BACKENDS = ("dense", "cusparselt", "cutlass")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
PREFILL_TOKENS = 2048  # the paper's setting: one sequence of 2048 tokens
# Rows of the activation matrix. cuSPARSELt cannot do a true GEMV (1 token): torch pads the dense
# operand to a multiple of 8 rows (fp16/bf16, torch >= 2.3; older releases needed up to 64, see
# `padded_rows`). We time multiples of 16 so no padding happens and "tokens" means what it says.
LINEAR_TOKENS = (16, 64, 256, 1024, 2048)
DECODE_BATCHES = (16, 64)
DECODE_KV_LEN = 512
NO_GPU_MESSAGE = (
    "no CUDA GPU: 2:4 speed-up needs NVIDIA sparse tensor cores (Ampere or newer); "
    "the committed results in results/speedup/ are shown instead"
)
RECORD_KIND = "wanda_core.speedup"
DEVICE = "cuda"  # where run_all puts its weights; the tests point it at the CPU to check the bookkeeping
RESULT_COLUMNS = [
    "family", "model", "layer", "out_features", "in_features", "phase", "batch", "context", "tokens",
    "rows", "n_layers", "dtype", "backend", "mode", "median_ms", "p10_ms", "p90_ms", "n", "calls",
    "copies", "error", "synthetic", "device", "source",
]

# The paper's numbers, as data: only its two headline figures. Per-layer-type values are left empty
# (status "unverified") rather than guessed: the paper text was not at hand when this was written.
_PAPER = "Sun et al. 2023, arXiv 2306.11695, structured 2:4 speed-up"
PAPER_SPEEDUP = [
    dict(model="7B", scope="linear layers (all)", speedup=1.6, approx=True, status="paper headline",
         device="RTX A6000", setting="batch 1 x 2048 tokens", source=_PAPER),
    dict(model="7B", scope="end-to-end latency", speedup=1.24, approx=False, status="paper headline",
         device="RTX A6000", setting="batch 1 x 2048 tokens", source=_PAPER),
] + [
    dict(model="7B", scope=f"{g} layers", speedup=None, approx=None, status="unverified: not transcribed",
         device="RTX A6000", setting="batch 1 x 2048 tokens", source=_PAPER)
    for g in LAYER_GROUPS
]


class SpeedupUnavailable(RuntimeError):
    """Raised by measurement entry points on a machine without a suitable NVIDIA GPU."""


class SparseMismatch(RuntimeError):
    """The semi-structured sparse product disagrees with the dense product of the same weight."""


def _dtype(d: str | torch.dtype) -> torch.dtype:
    return d if isinstance(d, torch.dtype) else DTYPES[d]


def _dname(d: str | torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def gpu_available() -> bool:
    """True if a CUDA GPU with sparse tensor cores (compute capability >= 8.0) is visible."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def require_gpu() -> None:
    if not torch.cuda.is_available():
        raise SpeedupUnavailable(NO_GPU_MESSAGE)
    if not gpu_available():
        cap = ".".join(map(str, torch.cuda.get_device_capability()))
        raise SpeedupUnavailable(f"{NO_GPU_MESSAGE} (found {torch.cuda.get_device_name()}, sm {cap})")


def unavailable_backends() -> dict[str, str]:
    """Sparse backends that cannot run here, with the reason (empty when both can)."""
    out = {}
    cslt = getattr(torch.backends, "cusparselt", None)
    if cslt is None or not cslt.is_available():
        out["cusparselt"] = "this torch build has no cuSPARSELt"
    if not torch.cuda.is_available():
        out["cutlass"] = "no CUDA GPU"
    elif (cap := torch.cuda.get_device_capability())[0] != 8:
        # torch's CUTLASS 2:4 kernels are compiled for sm_8x only and refuse Hopper and newer
        out["cutlass"] = f"torch's CUTLASS 2:4 kernels need compute capability 8.x; this GPU is {cap[0]}.{cap[1]}"
    return out


def available_backends() -> tuple[str, ...]:
    """Sparse backends usable on this machine, in BACKENDS order."""
    bad = unavailable_backends()
    return tuple(b for b in BACKENDS[1:] if b not in bad)


def make_24_weight(out_features: int, in_features: int, dtype: str | torch.dtype = torch.float16,
                   device: str | torch.device = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """A random (out, in) weight with a valid 2:4 mask along the input dimension (2 zeros in every 4)."""
    w = torch.randn(out_features, in_features, device=device, generator=generator) * in_features ** -0.5
    w = torch.where(w == 0, 1e-3, w)  # an exact 0 from randn would leave a block with one non-zero
    return w.masked_fill_(nm_mask(w.abs(), 2, 4), 0.0).to(_dtype(dtype)).contiguous()


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
        c = getattr(cls, "_DTYPE_SHAPE_CONSTRAINTS", {}).get(_dtype(dtype))
        align = math.lcm(align, c.dense_min_rows if c is not None else 64)
    return -(-tokens // align) * align


def _compare(y_sparse: torch.Tensor, y_dense: torch.Tensor, what: str = "sparse product") -> float:
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
    return _compare(F.linear(x, sparse), F.linear(x, weight), f"{backend} {tuple(weight.shape)} {_dname(weight.dtype)}")


def _summary(times_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times_ms, n=10, method="inclusive") if len(times_ms) > 1 else times_ms * 9
    return {"median_ms": statistics.median(times_ms), "p10_ms": q[0], "p90_ms": q[8], "n": len(times_ms)}


def _time(fn: Callable[[], Any], mode: str = "eager", warmup: int = 5, repeats: int = 30,
          min_sample_ms: float = 2.0, calls_per_fn: int = 1) -> dict[str, float]:
    """Per-call times of `fn` from CUDA events; each sample batches enough calls to last `min_sample_ms`."""
    if mode not in ("eager", "graph"):
        raise ValueError(f"unknown timing mode {mode!r}; valid: eager, graph")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(); fn(); end.record(); end.synchronize()
    inner = max(1, min(500, math.ceil(min_sample_ms / max(start.elapsed_time(end), 1e-3))))

    def run():
        for _ in range(inner):
            fn()

    if mode == "graph":
        side = torch.cuda.Stream()  # capture needs a warmed-up side stream (torch.cuda.graphs docs)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            run()
        run = graph.replay
        run()
    times = []
    for _ in range(repeats):
        start.record(); run(); end.record(); end.synchronize()
        times.append(start.elapsed_time(end) / (inner * calls_per_fn))
    return {**_summary(times), "calls": inner * calls_per_fn}


_GRAPH_PROBE = """
import sys, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from wanda_core.speedup import make_24_weight, to_sparse
w = to_sparse(make_24_weight(256, 512, torch.float16, "cuda"), {backend!r})
x = torch.randn(64, 512, device="cuda", dtype=torch.float16)
side = torch.cuda.Stream(); side.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(side):
    F.linear(x, w)
torch.cuda.current_stream().wait_stream(side)
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    y = F.linear(x, w)
x.copy_(torch.randn_like(x)); g.replay(); torch.cuda.synchronize()
torch.testing.assert_close(y, F.linear(x, w), rtol=1e-2, atol=1e-2)
"""


def graph_capture_error(backend: str) -> str | None:
    """None if a `backend` sparse linear captures into a CUDA graph and replays correctly, else why not.

    Probed in a child process: a failed capture can leave this process's CUDA state unusable.
    """
    code = _GRAPH_PROBE.format(root=str(Path(__file__).resolve().parents[1]), backend=backend)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "graph capture probe timed out"
    return None if r.returncode == 0 else ((r.stderr.strip().splitlines() or ["probe failed"])[-1])[:500]


def _l2_bytes() -> int:
    return getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0) or 50 << 20


def time_linear(shape: tuple[int, int], tokens: int, dtype: str | torch.dtype = "float16", backend: str = "dense",
                *, mode: str = "eager", warmup: int = 5, repeats: int = 30, min_sample_ms: float = 2.0,
                weight: torch.Tensor | None = None, verify: bool = True, seed: int = 0) -> dict[str, Any]:
    """Time `F.linear(x, W)` for one (out, in) weight shape and `tokens` input rows; times in ms per call."""
    require_gpu()
    dt = _dtype(dtype)
    if weight is None:
        weight = make_24_weight(*shape, dt, "cuda", torch.Generator("cuda").manual_seed(seed))
    rows = padded_rows(tokens, dt)
    # enough distinct copies that a weight is evicted from L2 before its next use
    copies = max(1, min(16, math.ceil(3 * _l2_bytes() / (weight.numel() * weight.element_size()))))
    ws = [to_sparse(weight.clone(), backend) for _ in range(copies)]
    if verify and backend != "dense":
        check_sparse_matches_dense(weight, backend, sparse=ws[0])
    x = torch.randn(rows, shape[1], device="cuda", dtype=dt)

    def fn():
        for w in ws:
            F.linear(x, w)

    with torch.no_grad():
        stats = _time(fn, mode, warmup, repeats, min_sample_ms, calls_per_fn=copies)
    return dict(family="linear", out_features=shape[0], in_features=shape[1], tokens=tokens, rows=rows,
                dtype=_dname(dt), backend=backend, mode=mode, copies=copies, **stats)


# --- a minimal LLaMA decoder stack (random 2:4 weights) -----------------------------------------


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
        return F.linear(x, self.weight)


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
        dt = _dtype(dtype)
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
                n_layers: int | None = None, seed: int = 0) -> DecoderStack:
    h, i, heads, layers = LLAMA_DIMS[model]
    return DecoderStack(h, i, heads, n_layers or layers, dtype, device, seed)


def time_decoder_stack(model: str = "7B", tokens: int = PREFILL_TOKENS, phase: str = "prefill", sparse: bool = False,
                       *, backend: str = "cusparselt", dtype: str | torch.dtype = "float16", batch: int = 16,
                       kv_len: int = DECODE_KV_LEN, mode: str = "eager", warmup: int = 3, repeats: int = 20,
                       n_layers: int | None = None, stack: DecoderStack | None = None) -> dict[str, Any]:
    """Latency of one forward through a LLaMA-shaped decoder stack, dense or with 2:4 weights.

    prefill: one sequence of `tokens` tokens, causal attention over itself (no cache written).
    decode:  `batch` sequences each generating one token against a KV cache of `kv_len` positions
             (the new token fills the last one); every linear then sees `batch` rows.
    """
    require_gpu()
    if phase not in ("prefill", "decode"):
        raise ValueError(f"unknown phase {phase!r}; valid: prefill, decode")
    stack = stack if stack is not None else build_stack(model, dtype, "cuda", n_layers)
    dt, variant = stack.cos.dtype, backend if sparse else "dense"
    stack.use(variant)
    if phase == "prefill":
        x = torch.randn(1, tokens, stack.dim, device=stack.cos.device, dtype=dt)
        fn, rows, batch, context = (lambda: stack(x)), tokens, 1, tokens
    else:
        stack.setup_cache(batch, kv_len)
        x = torch.randn(batch, 1, stack.dim, device=stack.cos.device, dtype=dt)
        fn, rows, context = (lambda: stack(x, decode=True)), batch, kv_len
    with torch.no_grad():
        stats = _time(fn, mode, warmup, repeats, min_sample_ms=0.0)
    return dict(family="decoder_stack", model=model, phase=phase, batch=batch, context=context, tokens=rows,
                rows=rows, n_layers=len(stack.layers), dtype=_dname(dt), backend=variant, mode=mode, **stats)


# --- running everything, records ----------------------------------------------------------------


def _nvidia_smi() -> list[dict[str, str]]:
    q = "name,driver_version,memory.total,power.limit,clocks.max.sm"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [dict(zip(q.split(","), (v.strip() for v in line.split(",")))) for line in out.splitlines() if line.strip()]


def _nvml_driver() -> str | None:
    try:
        import pynvml  # optional: NVIDIA's NVML bindings, when nvidia-smi is not on PATH

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else v
    except Exception:
        return None


def speedup_provenance() -> dict[str, Any]:
    """`records.provenance` plus what a GPU timing depends on: driver, CUDA, cuSPARSELt, clocks."""
    p = provenance(device="cuda")
    smi = _nvidia_smi()
    cslt = getattr(torch.backends, "cusparselt", None)
    v = cslt.version() if cslt is not None and cslt.is_available() else None
    p["device"].update(
        driver=smi[0]["driver_version"] if smi else _nvml_driver(),
        nvidia_smi=smi,
        cusparselt=f"{v // 1000}.{v % 1000 // 100}.{v % 100}" if v else None,
        cusparselt_int=v,
        l2_bytes=_l2_bytes() if torch.cuda.is_available() else None,
    )
    p["versions"]["cuda"] = torch.version.cuda
    return p


def run_all(out_dir: str | Path = "results/speedup", dtypes: tuple[str, ...] = ("float16", "bfloat16"), *,
            models: tuple[str, ...] | None = None, tokens: tuple[int, ...] | None = None,
            backends: tuple[str, ...] | None = None, modes: tuple[str, ...] = ("eager", "graph"),
            repeats: int | None = None, stack_model: str | None = "7B", prefill_tokens: int = PREFILL_TOKENS,
            decode_batches: tuple[int, ...] | None = None, kv_len: int = DECODE_KV_LEN,
            stack_repeats: int | None = None, budget_s: float = 480.0, quick: bool = False, seed: int = 0,
            progress: bool = True) -> dict[str, Path]:
    """Measure linear layers (all models) and the 7B decoder stack; write `linear.json` and
    `decoder_stack.json` under `out_dir` (rewritten after each step, `complete` true at the end).

    Work past `budget_s` seconds is not measured but listed as rows with error "skipped: time budget",
    so a slow GPU still finishes inside a 10-minute job. A backend that fails its correctness check or
    raises is recorded with its error instead of a time.
    """
    require_gpu()
    models = models or (("7B",) if quick else tuple(LLAMA_DIMS))
    tokens = tokens or ((16, 256, 2048) if quick else LINEAR_TOKENS)
    decode_batches = decode_batches or ((16,) if quick else DECODE_BATCHES)
    repeats = repeats or (10 if quick else 100)
    stack_repeats = stack_repeats or (5 if quick else 30)
    variants = ("dense",) + tuple(backends or available_backends())
    out, t0 = Path(out_dir), time.monotonic()
    no_graph = {b: e for b in variants[1:] if "graph" in modes and (e := graph_capture_error(b))}
    settings = dict(models=models, tokens=tokens, dtypes=dtypes, backends=variants, modes=modes, repeats=repeats,
                    stack_model=stack_model, prefill_tokens=prefill_tokens, decode_batches=decode_batches,
                    kv_len=kv_len, stack_repeats=stack_repeats, budget_s=budget_s, quick=quick, seed=seed,
                    unmeasured_backends={b: r for b, r in unavailable_backends().items() if b not in variants},
                    no_graph_capture=no_graph,
                    alg_id_cusparselt=0, weights="random normal, 2:4 mask by magnitude (values do not affect timing)")
    notes = {
        "linear": "F.linear(x, W), x: rows x in_features; q/k/v/o and gate/up share shapes and are timed once; "
                  "small weights are cycled through `copies` copies so they are not L2-resident",
        "decoder_stack": "LLaMA blocks (RMSNorm, rotary SDPA attention, SwiGLU); no embedding, final norm or LM head; "
                         "prefill: 1 sequence x tokens, causal; decode: batch sequences x 1 new token, KV cache of "
                         "`context` positions",
    }
    prov = speedup_provenance()
    recs = {f: dict(kind=RECORD_KIND, family=f, synthetic=False, complete=False, provenance=prov, settings=settings,
                    notes=notes[f], rows=[]) for f in (("linear", "decoder_stack") if stack_model else ("linear",))}
    paths = {f: out / f"{f}.json" for f in recs}

    def save():
        for f, r in recs.items():
            atomic_write_json(paths[f], r)

    def over() -> bool:
        return time.monotonic() - t0 > budget_s

    def measure(family: str, base: dict, fn: Callable[[], dict], bad: str | None = None):
        if base["mode"] == "graph" and base["backend"] in no_graph:
            bad = bad or f"CUDA graph capture failed in a probe: {no_graph[base['backend']]}"
        if bad or over():
            row = {**base, "error": bad or "skipped: time budget"}
        else:
            try:
                row = {**base, **fn(), "error": None}
            except Exception as e:  # a failing backend is a result too; the run goes on
                row = {**base, "error": _err(e)}
        recs[family]["rows"].append(row)
        bar.update()

    n_lin = len(models) * len(LAYER_GROUPS) * len(dtypes) * len(tokens) * len(modes) * len(variants)
    n_stack = len(dtypes) * (1 + len(decode_batches)) * len(modes) * len(variants) if stack_model else 0
    bar = _progress(n_lin + n_stack, progress)
    gen = torch.Generator(DEVICE).manual_seed(seed)

    def linears(model: str):
        for dtype in dtypes:
            for group, names in LAYER_GROUPS.items():
                shape = LLAMA_SHAPES[model][names[0]]
                w, bad = None, {}
                try:
                    w = make_24_weight(*shape, dtype, DEVICE, gen) if not over() else None
                except Exception as e:
                    bad = dict.fromkeys(variants, _err(e))
                for b in variants[1:] if w is not None else ():
                    try:
                        check_sparse_matches_dense(w, b)
                    except Exception as e:
                        bad[b] = _err(e)
                for t in tokens:
                    for mode in modes:
                        for b in variants:
                            base = dict(family="linear", model=model, layer=group, out_features=shape[0],
                                        in_features=shape[1], tokens=t, dtype=dtype, backend=b, mode=mode)
                            measure("linear", base, lambda: time_linear(shape, t, dtype, b, mode=mode, repeats=repeats,
                                                                        weight=w, verify=False), bad.get(b))
                del w
                torch.cuda.empty_cache()
            save()

    def stack_runs(model: str):
        for dtype in dtypes:
            stack, bad = None, None
            try:
                if not over():
                    stack = build_stack(model, dtype, DEVICE, seed=seed)
                    stack.setup_cache(max(decode_batches), kv_len)
            except Exception as e:
                stack, bad = None, _err(e)
            for phase, batch in [("prefill", 1)] + [("decode", b) for b in decode_batches]:
                for mode in modes:
                    for b in variants:
                        t = prefill_tokens if phase == "prefill" else batch
                        base = dict(family="decoder_stack", model=model, phase=phase, batch=batch, tokens=t,
                                    context=prefill_tokens if phase == "prefill" else kv_len, dtype=dtype,
                                    backend=b, mode=mode)
                        measure("decoder_stack", base, lambda: time_decoder_stack(
                            model, prefill_tokens, phase, b != "dense", backend=b, dtype=dtype, batch=batch,
                            kv_len=kv_len, mode=mode, repeats=stack_repeats, stack=stack), bad)
            del stack
            torch.cuda.empty_cache()
            save()

    # 7B first (the paper's model), then its decoder stack, then the larger shapes
    linears(models[0])
    if stack_model:
        stack_runs(stack_model)
    for m in models[1:]:
        linears(m)
    bar.close()
    for r in recs.values():
        r["complete"] = True
        r["wall_s"] = round(time.monotonic() - t0, 1)
    save()
    return paths


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a convenience; the measurement does not need it
        return type("NoBar", (), {"update": lambda self, n=1: None, "close": lambda self: None})()
    return tqdm(total=total, desc="2:4 speed-up", disable=not enabled)


def load_records(results_dir: str | Path = "results/speedup") -> list[dict[str, Any]]:
    """The speed-up run records in `results_dir` (missing folder: none), each with its file name."""
    recs = []
    for p in sorted(Path(results_dir).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and r.get("kind") == RECORD_KIND:
            recs.append({**r, "source": p.name})
    return recs


def load_results(results_dir: str | Path = "results/speedup") -> "pd.DataFrame":  # noqa: F821
    """One row per timing from every record in `results_dir`, columns `RESULT_COLUMNS` (empty if none)."""
    import pandas as pd

    rows = [{**row, "family": r["family"], "synthetic": bool(r.get("synthetic")), "source": r["source"],
             "device": r.get("provenance", {}).get("device", {}).get("name")}
            for r in load_records(results_dir) for row in r.get("rows", [])]
    return pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS) if rows else pd.DataFrame(columns=RESULT_COLUMNS)


def load_provenance(results_dir: str | Path = "results/speedup") -> "pd.DataFrame":  # noqa: F821
    """Where and with what each record was measured: one row per record."""
    import pandas as pd

    cols = ["family", "device", "driver", "cuda", "torch", "cusparselt", "date", "complete", "synthetic", "source"]
    rows = []
    for r in load_records(results_dir):
        p, d = r.get("provenance", {}), r.get("provenance", {}).get("device", {})
        rows.append(dict(family=r["family"], device=d.get("name"), driver=d.get("driver"), cuda=d.get("cuda"),
                         torch=p.get("versions", {}).get("torch"), cusparselt=d.get("cusparselt"), date=p.get("date"),
                         complete=r.get("complete"), synthetic=bool(r.get("synthetic")), source=r["source"]))
    return pd.DataFrame(rows, columns=cols)


def speedup_table(df: "pd.DataFrame", family: str = "linear") -> "pd.DataFrame":  # noqa: F821
    """Sparse timings beside the dense timing of the same configuration; speedup = dense / sparse median."""
    keys = (["model", "layer", "out_features", "in_features", "tokens"] if family == "linear"
            else ["model", "phase", "batch", "context", "tokens"]) + ["dtype", "mode"]
    ok = df[(df["family"] == family) & df["median_ms"].notna()]
    dense = ok[ok["backend"] == "dense"][keys + ["median_ms", "p10_ms", "p90_ms"]]
    dense = dense.rename(columns={"median_ms": "dense_ms", "p10_ms": "dense_p10_ms", "p90_ms": "dense_p90_ms"})
    sparse = ok[ok["backend"] != "dense"][keys + ["backend", "median_ms", "p10_ms", "p90_ms"]]
    t = sparse.rename(columns={"median_ms": "sparse_ms", "p10_ms": "sparse_p10_ms", "p90_ms": "sparse_p90_ms"})
    t = t.merge(dense, on=keys, how="inner")
    t["speedup"] = t["dense_ms"] / t["sparse_ms"]
    for c in {"out_features", "in_features", "tokens", "batch", "context"} & set(keys):
        t[c] = t[c].astype("Int64")  # counts, though NaN elsewhere in the long frame made them floats
    return t[keys + ["backend", "dense_ms", "sparse_ms", "speedup", "dense_p10_ms", "dense_p90_ms",
                     "sparse_p10_ms", "sparse_p90_ms"]].reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m wanda_core.speedup", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/speedup", help="folder for the JSON run records")
    ap.add_argument("--quick", action="store_true", help="smoke check: 7B only, few token counts and repeats")
    ap.add_argument("--dtypes", default="float16,bfloat16")
    ap.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(LLAMA_DIMS)}")
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop measuring (and mark skipped) after this")
    a = ap.parse_args(argv)
    try:
        paths = run_all(a.out, tuple(a.dtypes.split(",")), models=tuple(a.models.split(",")) if a.models else None,
                        budget_s=a.budget_s, quick=a.quick)
    except SpeedupUnavailable as e:
        raise SystemExit(str(e)) from None
    for f, p in paths.items():
        print(f"{f}: {p}")


if __name__ == "__main__":
    main()
