"""Timing one configuration: a linear layer or a decoder stack, dense or 2:4, eager or CUDA graph.

    time_linear((4096, 11008), 2048, "float16", "cusparselt")   # ms per call: median, p10, p90
    time_decoder_stack("7B", phase="decode", sparse=True, batch=16)

Timing: CUDA events around a batch of calls, repeated; we report the median and p10/p90 per call.
Mode "eager" launches from Python as a user would (host overhead included, which matters for small
token counts and for the per-call cuSPARSELt plan set-up in PyTorch); mode "graph" replays the same
calls from a CUDA graph, which leaves mostly GPU time. Small weights are cycled through several
copies so that they do not sit in L2 between calls (a real model streams each weight once).
On the CPU (the rehearsal) the same code times with `time.perf_counter` and refuses graph mode.
"""
from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from wanda_core.gpu.speedup.device import l2_bytes, require_gpu
from wanda_core.gpu.speedup.sparse24 import (LLAMA_DIMS, check_sparse_matches_dense, dtype_name, dtype_of, make_24_weight, padded_rows,
                       to_sparse)
from wanda_core.gpu.speedup.stack import DecoderStack, build_stack

PREFILL_TOKENS = 2048  # the paper's setting: one sequence of 2048 tokens
DECODE_KV_LEN = 512


def _summary(times_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times_ms, n=10, method="inclusive") if len(times_ms) > 1 else times_ms * 9
    return {"median_ms": statistics.median(times_ms), "p10_ms": q[0], "p90_ms": q[8], "n": len(times_ms)}


class _CpuClock:
    """perf_counter with the interface of a pair of CUDA events (the rehearsal's timer)."""

    def __init__(self):
        self.t0 = self.t1 = 0.0

    def start(self):
        self.t0 = time.perf_counter()

    def stop(self):
        self.t1 = time.perf_counter()

    def ms(self) -> float:
        return (self.t1 - self.t0) * 1e3


class _CudaClock:
    def __init__(self):
        self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def start(self):
        self.a.record()

    def stop(self):
        self.b.record()
        self.b.synchronize()

    def ms(self) -> float:
        return self.a.elapsed_time(self.b)


def time_call(fn: Callable[[], Any], mode: str = "eager", warmup: int = 5, repeats: int = 30,
              min_sample_ms: float = 2.0, calls_per_fn: int = 1, device: str = "cuda") -> dict[str, float]:
    """Per-call times of `fn`; each sample batches enough calls to last `min_sample_ms`."""
    if mode not in ("eager", "graph"):
        raise ValueError(f"unknown timing mode {mode!r}; valid: eager, graph")
    cuda = torch.device(device).type == "cuda"
    if mode == "graph" and not cuda:
        raise RuntimeError("CUDA graph timing needs a CUDA device")
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    clock = _CudaClock() if cuda else _CpuClock()
    clock.start(); fn(); clock.stop()
    inner = max(1, min(500, math.ceil(min_sample_ms / max(clock.ms(), 1e-3))))

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
        clock.start(); run(); clock.stop()
        times.append(clock.ms() / (inner * calls_per_fn))
    return {**_summary(times), "calls": inner * calls_per_fn}


_GRAPH_PROBE = """
import sys, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from wanda_core.gpu.speedup.sparse24 import make_24_weight, to_sparse
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
    code = _GRAPH_PROBE.format(root=str(Path(__file__).resolve().parents[3]), backend=backend)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "graph capture probe timed out"
    return None if r.returncode == 0 else ((r.stderr.strip().splitlines() or ["probe failed"])[-1])[:500]


def time_linear(shape: tuple[int, int], tokens: int, dtype: str | torch.dtype = "float16", backend: str = "dense",
                *, mode: str = "eager", warmup: int = 5, repeats: int = 30, min_sample_ms: float = 2.0,
                weight: torch.Tensor | None = None, verify: bool = True, seed: int = 0,
                device: str = "cuda") -> dict[str, Any]:
    """Time `F.linear(x, W)` for one (out, in) weight shape and `tokens` input rows; times in ms per call."""
    if torch.device(device).type == "cuda" or backend != "dense":
        require_gpu()
    dt = dtype_of(dtype)
    if weight is None:
        weight = make_24_weight(*shape, dt, device, torch.Generator(device).manual_seed(seed))
    rows = padded_rows(tokens, dt)
    # enough distinct copies that a weight is evicted from L2 before its next use
    l2 = l2_bytes() if weight.is_cuda else 0
    copies = max(1, min(16, math.ceil(3 * l2 / (weight.numel() * weight.element_size()))))
    ws = [to_sparse(weight.clone(), backend) for _ in range(copies)]
    if verify and backend != "dense":
        check_sparse_matches_dense(weight, backend, sparse=ws[0])
    x = torch.randn(rows, shape[1], device=weight.device, dtype=dt)

    def fn():
        for w in ws:
            F.linear(x, w)

    with torch.no_grad():
        stats = time_call(fn, mode, warmup, repeats, min_sample_ms, calls_per_fn=copies, device=str(weight.device))
    return dict(family="linear", out_features=shape[0], in_features=shape[1], tokens=tokens, rows=rows,
                dtype=dtype_name(dt), backend=backend, mode=mode, copies=copies, **stats)


def time_decoder_stack(model: str = "7B", tokens: int = PREFILL_TOKENS, phase: str = "prefill", sparse: bool = False,
                       *, backend: str = "cusparselt", dtype: str | torch.dtype = "float16", batch: int = 16,
                       kv_len: int = DECODE_KV_LEN, mode: str = "eager", warmup: int = 3, repeats: int = 20,
                       n_layers: int | None = None, stack: DecoderStack | None = None) -> dict[str, Any]:
    """Latency of one forward through a LLaMA-shaped decoder stack, dense or with 2:4 weights.

    prefill: one sequence of `tokens` tokens, causal attention over itself (no cache written).
    decode:  `batch` sequences each generating one token against a KV cache of `kv_len` positions
             (the new token fills the last one); every linear then sees `batch` rows.
    A `stack` given on the CPU is the rehearsal: dense only, timed with perf_counter.
    """
    if stack is None or stack.cos.is_cuda or sparse:
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
    if sparse:  # never time a stack whose 2:4 forward computes something else
        stack.check_block(x, variant, decode=phase == "decode")
    with torch.no_grad():
        stats = time_call(fn, mode, warmup, repeats, min_sample_ms=0.0, device=str(stack.cos.device))
    return dict(family="decoder_stack", model=model, phase=phase, batch=batch, context=context, tokens=rows,
                rows=rows, n_layers=len(stack.layers), dtype=dtype_name(dt), backend=variant, mode=mode, **stats)


__all__ = ["time_call", "time_linear", "time_decoder_stack", "graph_capture_error", "PREFILL_TOKENS",
           "DECODE_KV_LEN", "LLAMA_DIMS"]
