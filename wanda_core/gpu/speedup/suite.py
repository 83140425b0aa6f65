"""The 2:4 speed-up suite: every LLaMA linear shape and the 7B decoder stack, timed dense and 2:4,
written as run records. The entry point of `make speedup` and part 3 of `make gpu`.

    python -m wanda_core.gpu.speedup --out results/speedup              # full run, a few minutes on an H100
    python -m wanda_core.gpu.speedup --out /tmp/speedup --quick         # smoke check: 7B only, few repeats
    python -m wanda_core.gpu.speedup --out /tmp/speedup --rehearse      # CPU, tiny shapes, every loop, seconds

Without a GPU every measurement raises `SpeedupUnavailable` (the rehearsal excepted: it times the
dense path on the CPU and records the sparse backends as unavailable, so the loops, the budget and
the records are exercised before any GPU minute is spent). Weight values are random (timing does not
depend on them) but every sparse product is checked against the dense one before it is timed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import torch

from wanda_core.runs.records import atomic_write_json
from wanda_core.gpu.speedup.device import Budget, SpeedupUnavailable, available_backends, gpu_provenance, require_gpu, unavailable_backends
from wanda_core.gpu.speedup.read import RECORD_KIND
from wanda_core.gpu.speedup.sparse24 import LAYER_GROUPS, LLAMA_DIMS, check_sparse_matches_dense, linear_shapes, make_24_weight
from wanda_core.gpu.speedup.stack import build_stack
from wanda_core.gpu.speedup.timing import DECODE_KV_LEN, PREFILL_TOKENS, graph_capture_error, time_decoder_stack, time_linear

# Rows of the activation matrix. cuSPARSELt cannot do a true GEMV (1 token): torch pads the dense
# operand to a multiple of 8 rows (fp16/bf16). We time multiples of 16 so no padding happens.
LINEAR_TOKENS = (16, 64, 256, 1024, 2048)
DECODE_BATCHES = (16, 64)
REHEARSAL_DIMS = {"tiny": (64, 128, 4, 2)}  # hidden, intermediate, heads, blocks: a CPU-sized LLaMA


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def _progress(total: int, enabled: bool, desc: str = "2:4 speed-up"):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a convenience; the measurement does not need it
        return type("NoBar", (), {"update": lambda self, n=1: None, "close": lambda self: None})()
    return tqdm(total=total, desc=desc, disable=not enabled)


def run_all(out_dir: str | Path = "results/speedup", dtypes: tuple[str, ...] = ("float16", "bfloat16"), *,
            models: tuple[str, ...] | None = None, tokens: tuple[int, ...] | None = None,
            backends: tuple[str, ...] | None = None, modes: tuple[str, ...] = ("eager", "graph"),
            repeats: int | None = None, stack_model: str | None = "7B", prefill_tokens: int = PREFILL_TOKENS,
            decode_batches: tuple[int, ...] | None = None, kv_len: int = DECODE_KV_LEN,
            stack_repeats: int | None = None, budget_s: float = 480.0, quick: bool = False, seed: int = 0,
            progress: bool = True, device: str = "cuda", dims: dict | None = None) -> dict[str, Path]:
    """Measure linear layers (all models) and the decoder stack; write `linear.json` and
    `decoder_stack.json` under `out_dir` (rewritten after each step, `complete` true at the end).

    Work past `budget_s` seconds is not measured but listed as rows with error "skipped: time budget",
    so a slow GPU still finishes inside its share of the session. A backend that fails its correctness
    check or raises is recorded with its error instead of a time. `device="cpu"` with tiny `dims` is
    the rehearsal (records marked `rehearsal: true`).
    """
    cuda = torch.device(device).type == "cuda"
    if cuda:
        require_gpu()
    dims = dims or LLAMA_DIMS
    models = models or (tuple(dims)[:1] if quick else tuple(dims))
    tokens = tokens or ((16, 256, 2048) if quick else LINEAR_TOKENS)
    decode_batches = decode_batches or ((16,) if quick else DECODE_BATCHES)
    repeats = repeats or (10 if quick else 100)
    stack_repeats = stack_repeats or (5 if quick else 30)
    variants = ("dense",) + tuple(backends or (available_backends() if cuda else ("cusparselt",)))
    out, budget = Path(out_dir), Budget(budget_s)
    no_graph = ({b: e for b in variants[1:] if "graph" in modes and (e := graph_capture_error(b))} if cuda
                else dict.fromkeys(variants[1:], "no CUDA device (rehearsal)"))
    settings = dict(models=models, tokens=tokens, dtypes=dtypes, backends=variants, modes=modes, repeats=repeats,
                    stack_model=stack_model, prefill_tokens=prefill_tokens, decode_batches=decode_batches,
                    kv_len=kv_len, stack_repeats=stack_repeats, budget_s=budget_s, quick=quick, seed=seed,
                    dims={m: dims[m] for m in models}, device=device,
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
    prov = gpu_provenance(device)
    recs = {f: dict(kind=RECORD_KIND, family=f, synthetic=False, rehearsal=not cuda, complete=False,
                    provenance=prov, settings=settings, notes=notes[f], rows=[])
            for f in (("linear", "decoder_stack") if stack_model else ("linear",))}
    paths = {f: out / f"{f}.json" for f in recs}

    def save():
        for f, r in recs.items():
            r["wall_s"] = round(budget.elapsed(), 1)
            atomic_write_json(paths[f], r)

    def measure(family: str, base: dict, fn: Callable[[], dict], bad: str | None = None):
        if base["mode"] == "graph" and base["backend"] in no_graph:
            bad = bad or f"CUDA graph capture failed in a probe: {no_graph[base['backend']]}"
        if bad or budget.over():
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
    gen = torch.Generator(device).manual_seed(seed)

    def linears(model: str):
        shapes = linear_shapes(model, dims)
        for dtype in dtypes:
            for group, names in LAYER_GROUPS.items():
                shape = shapes[names[0]]
                w, bad = None, {}
                try:
                    w = make_24_weight(*shape, dtype, device, gen) if not budget.over() else None
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
                                                                        weight=w, verify=False, device=device),
                                    bad.get(b))
                del w
                if cuda:
                    torch.cuda.empty_cache()
            save()

    def stack_runs(model: str):
        for dtype in dtypes:
            stack, bad = None, None
            try:
                if not budget.over():
                    stack = build_stack(model, dtype, device, seed=seed, dims=dims)
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
            if cuda:
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
    save()
    return paths


def rehearse(out_dir: str | Path, budget_s: float = 60.0, progress: bool = False) -> dict[str, Path]:
    """Every loop of `run_all` on the CPU with a tiny LLaMA shape (seconds): the dense path is timed,
    the sparse backends and CUDA graphs are recorded as unavailable."""
    return run_all(out_dir, ("float32", "bfloat16"), models=("tiny",), tokens=(16, 64), decode_batches=(4,),
                   repeats=3, stack_repeats=2, stack_model="tiny", prefill_tokens=32, kv_len=16,
                   budget_s=budget_s, progress=progress, device="cpu", dims=REHEARSAL_DIMS)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m wanda_core.gpu.speedup", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/speedup", help="folder for the JSON run records")
    ap.add_argument("--quick", action="store_true", help="smoke check: 7B only, few token counts and repeats")
    ap.add_argument("--rehearse", action="store_true", help="CPU, tiny shapes: exercise every loop in seconds")
    ap.add_argument("--dtypes", default="float16,bfloat16")
    ap.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(LLAMA_DIMS)}")
    ap.add_argument("--repeats", type=int, default=None, help="samples per linear timing (default 100; quick 10)")
    ap.add_argument("--stack-repeats", type=int, default=None, help="samples per stack timing (default 30)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop measuring (and mark skipped) after this")
    a = ap.parse_args(argv)
    try:
        if a.rehearse:
            paths = rehearse(a.out, a.budget_s, progress=True)
        else:
            paths = run_all(a.out, tuple(a.dtypes.split(",")), models=tuple(a.models.split(",")) if a.models else None,
                            repeats=a.repeats, stack_repeats=a.stack_repeats, budget_s=a.budget_s, quick=a.quick)
    except SpeedupUnavailable as e:
        raise SystemExit(str(e)) from None
    for f, p in paths.items():
        print(f"{f}: {p}")
