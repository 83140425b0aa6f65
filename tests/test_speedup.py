"""wanda_core.speedup on CPU: shapes, 2:4 weights, the record round trip, the no-GPU message, and the
decoder stack's dense forward (checked against Hugging Face's LLaMA). Timing itself needs CUDA."""
import math

import pytest
import torch

from wanda_core import speedup as sp
from wanda_core.records import atomic_write_json, provenance

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")
needs_gpu = pytest.mark.skipif(not sp.gpu_available(), reason="needs an NVIDIA GPU with sparse tensor cores")


def test_llama_shapes():
    s7 = sp.LLAMA_SHAPES["7B"]
    assert s7["q"] == s7["k"] == s7["v"] == s7["o"] == (4096, 4096)
    assert s7["gate"] == s7["up"] == (11008, 4096)
    assert s7["down"] == (4096, 11008)
    assert sp.LLAMA_SHAPES["65B"]["down"] == (8192, 22016)
    assert sp.LLAMA_SHAPES["30B"]["up"] == (17920, 6656)
    assert sp.LLAMA_SHAPES["13B"]["o"] == (5120, 5120)
    for model, (h, i, heads, _) in sp.LLAMA_DIMS.items():
        assert set(sp.LLAMA_SHAPES[model]) == set(sp.LAYER_TYPES)
        assert h % heads == 0 and h // heads == 128  # LLaMA-1 uses 128-wide heads at every size
        # every in_features must split into 2:4 groups, and every layer type belongs to one group
        assert all(s[1] % 4 == 0 for s in sp.LLAMA_SHAPES[model].values())
    assert sorted(t for g in sp.LAYER_GROUPS.values() for t in g) == sorted(sp.LAYER_TYPES)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(8, 16), (37, 64), (3, 4)])
def test_make_24_weight_has_two_nonzeros_in_every_four(dtype, shape):
    w = sp.make_24_weight(*shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    assert w.shape == shape and w.dtype == dtype and w.is_contiguous()
    nnz = (w != 0).reshape(shape[0], -1, 4).sum(-1)
    assert torch.equal(nnz, torch.full_like(nnz, 2))


def test_make_24_weight_keeps_the_larger_magnitudes_and_is_seeded():
    a = sp.make_24_weight(16, 32, torch.float32, generator=torch.Generator().manual_seed(3))
    b = sp.make_24_weight(16, 32, torch.float32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    dense = torch.randn(16, 32, generator=torch.Generator().manual_seed(3)) * 32 ** -0.5
    blocks = dense.abs().reshape(16, -1, 4)
    kept = a.abs().reshape(16, -1, 4)
    # the smallest kept magnitude in a block is at least the largest pruned one
    pruned_max = torch.where(kept == 0, blocks, torch.zeros_like(blocks)).amax(-1)
    kept_min = torch.where(kept != 0, blocks, torch.full_like(blocks, math.inf)).amin(-1)
    assert (kept_min >= pruned_max).all()


def test_make_24_weight_rejects_widths_not_divisible_by_four():
    with pytest.raises(ValueError, match="divide"):
        sp.make_24_weight(4, 6)


def test_padded_rows_are_multiples_the_kernels_accept():
    for t in (1, 7, 16, 100, 2048):
        r = sp.padded_rows(t, "float16")
        assert r >= t and r % 8 == 0 and r - t < 64
    assert sp.padded_rows(2048) == 2048 and all(sp.padded_rows(t) == t for t in sp.LINEAR_TOKENS)


def test_compare_accepts_rounding_and_rejects_wrong_products():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(16, 32, generator=g).half()
    assert sp._compare(y.clone(), y) == 0.0
    assert sp._compare((y.float() * (1 + 1e-3)).half(), y) < 1e-2
    with pytest.raises(sp.SparseMismatch, match="differs from the dense product"):
        sp._compare(y.flip(0), y)
    with pytest.raises(sp.SparseMismatch):
        sp._compare(torch.full_like(y, float("nan")), y)
    with pytest.raises(sp.SparseMismatch, match="shape"):
        sp._compare(y.t(), y)


def _synthetic_record(family, rows):
    prov = provenance(device="cpu")
    prov["device"]["name"] = "SYNTHETIC (test fixture, not a measurement)"
    return dict(kind=sp.RECORD_KIND, family=family, synthetic=True, complete=True, provenance=prov,
                settings={}, notes="synthetic test record", rows=rows)


def test_record_round_trip_and_speedup_table(tmp_path):
    lin = [dict(family="linear", model="7B", layer="q/k/v/o", out_features=4096, in_features=4096, tokens=2048,
                rows=2048, dtype="float16", backend=b, mode="eager", median_ms=ms, p10_ms=ms * 0.9, p90_ms=ms * 1.1,
                n=5, calls=10, copies=1, error=None) for b, ms in (("dense", 2.0), ("cusparselt", 1.25))]
    lin.append({**lin[0], "backend": "cutlass", "median_ms": None, "p10_ms": None, "p90_ms": None,
                "error": "RuntimeError: unsupported"})
    stk = [dict(family="decoder_stack", model="7B", phase="decode", batch=16, context=512, tokens=16, rows=16,
                n_layers=32, dtype="bfloat16", backend=b, mode="graph", median_ms=ms, p10_ms=ms, p90_ms=ms, n=3,
                calls=1, error=None) for b, ms in (("dense", 9.0), ("cusparselt", 10.0))]
    atomic_write_json(tmp_path / "linear.json", _synthetic_record("linear", lin))
    atomic_write_json(tmp_path / "decoder_stack.json", _synthetic_record("decoder_stack", stk))
    (tmp_path / "unrelated.json").write_text('{"kind": "something else", "rows": [{"x": 1}]}')
    (tmp_path / "broken.json").write_text("{not json")

    df = sp.load_results(tmp_path)
    assert list(df.columns) == sp.RESULT_COLUMNS
    assert len(df) == 5 and df["synthetic"].all()
    assert set(df["source"]) == {"linear.json", "decoder_stack.json"}
    assert df["device"].str.startswith("SYNTHETIC").all()
    assert df.loc[df.backend == "cutlass", "error"].item().startswith("RuntimeError")

    t = sp.speedup_table(df, "linear")
    assert len(t) == 1 and t.backend.item() == "cusparselt"  # the failed backend has no time, so no ratio
    assert t.speedup.item() == pytest.approx(1.6)
    d = sp.speedup_table(df, "decoder_stack")
    assert d.speedup.item() == pytest.approx(0.9) and d.phase.item() == "decode"

    prov = sp.load_provenance(tmp_path)
    assert len(prov) == 2 and prov["synthetic"].all() and set(prov.family) == {"linear", "decoder_stack"}


def test_load_results_without_records_is_empty_with_columns(tmp_path):
    for d in (tmp_path, tmp_path / "missing"):
        df = sp.load_results(d)
        assert df.empty and list(df.columns) == sp.RESULT_COLUMNS
        assert sp.speedup_table(df).empty


def test_paper_numbers_are_only_the_headline_ones():
    vals = {r["scope"]: r["speedup"] for r in sp.PAPER_SPEEDUP}
    assert vals["end-to-end latency"] == 1.24 and vals["linear layers (all)"] == 1.6
    per_layer = [r for r in sp.PAPER_SPEEDUP if r["scope"].endswith(" layers") and r["scope"] != "linear layers (all)"]
    assert len(per_layer) == len(sp.LAYER_GROUPS)
    assert all(r["speedup"] is None and r["status"].startswith("unverified") for r in per_layer)


@no_cuda
def test_no_gpu_is_reported_plainly(tmp_path):
    assert sp.gpu_available() is False
    w = sp.make_24_weight(32, 64)
    calls = [lambda: sp.time_linear((4096, 4096), 16), lambda: sp.time_decoder_stack("7B", phase="decode"),
             lambda: sp.check_sparse_matches_dense(w), lambda: sp.run_all(tmp_path / "out", quick=True)]
    for call in calls:
        with pytest.raises(sp.SpeedupUnavailable, match=r"no CUDA GPU: 2:4 speed-up needs NVIDIA sparse tensor cores"):
            call()
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        sp.main(["--out", str(tmp_path / "out"), "--quick"])


def test_to_sparse_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        sp.to_sparse(torch.zeros(32, 32), "triton")
    w = torch.zeros(32, 32)
    assert sp.to_sparse(w, "dense") is w


def test_decoder_stack_dense_forward_shapes():
    st = sp.DecoderStack(dim=64, inter=128, heads=4, n_layers=2, dtype="float32", device="cpu")
    assert sum(isinstance(m, sp.SwapLinear) for m in st.modules()) == 2 * 7
    x = torch.randn(3, 10, 64)
    y = st(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(y, x)
    st.setup_cache(max_batch=4, kv_len=12)
    yd = st(torch.randn(3, 1, 64), decode=True)
    assert yd.shape == (3, 1, 64) and torch.isfinite(yd).all()
    assert st.layers[0].cache[0][:3, :, -1].abs().sum() > 0  # the new token's key was written to the last slot


def test_decode_step_matches_prefill_for_a_one_token_cache():
    st = sp.DecoderStack(dim=64, inter=96, heads=2, n_layers=2, dtype="float32", device="cpu", seed=5)
    x = torch.randn(2, 1, 64)
    st.setup_cache(max_batch=2, kv_len=1)  # position 0, attending only to itself: exactly a 1-token prefill
    torch.testing.assert_close(st(x, decode=True), st(x))


def test_decoder_block_matches_huggingface_llama():
    tr = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaModel

    torch.manual_seed(0)
    st = sp.DecoderStack(dim=64, inter=128, heads=4, n_layers=2, dtype="float32", device="cpu")
    cfg = tr.LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
                         num_hidden_layers=2, rms_norm_eps=1e-6, vocab_size=8, max_position_embeddings=64,
                         rope_theta=10000.0)
    hf = LlamaModel(cfg).eval()
    hf.norm = torch.nn.Identity()  # our stack stops before the final norm
    for blk, layer in zip(st.layers, hf.layers):
        a, m = layer.self_attn, layer.mlp
        for mine, theirs in ((blk.q, a.q_proj), (blk.k, a.k_proj), (blk.v, a.v_proj), (blk.o, a.o_proj),
                             (blk.gate, m.gate_proj), (blk.up, m.up_proj), (blk.down, m.down_proj)):
            theirs.weight.data.copy_(mine.weight)
    x = torch.randn(2, 9, 64)
    with torch.no_grad():
        torch.testing.assert_close(st(x), hf(inputs_embeds=x).last_hidden_state, rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.parametrize("backend", sp.available_backends() if sp.gpu_available() else ["cusparselt"])
def test_sparse_product_matches_and_times_on_gpu(backend):
    w = sp.make_24_weight(256, 512, torch.float16, "cuda")
    assert sp.check_sparse_matches_dense(w, backend) < 1e-2
    r = sp.time_linear((256, 512), 64, "float16", backend, repeats=3, warmup=1, weight=w)
    assert r["median_ms"] > 0 and r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] and r["rows"] == 64


@needs_gpu
def test_decoder_stack_sparse_matches_dense_on_gpu():
    st = sp.DecoderStack(dim=256, inter=512, heads=2, n_layers=2, dtype="float16", device="cuda")
    x = torch.randn(1, 32, 256, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        dense = st(x)
        st.use(sp.available_backends()[0])
        sparse = st(x)
    sp._compare(sparse, dense, "decoder stack")


def test_run_all_bookkeeping_on_cpu_with_stubbed_timers(tmp_path, monkeypatch):
    """run_all's loops, error rows, budget and records, with the GPU timers replaced by stubs (no timing here)."""
    monkeypatch.setattr(sp, "DEVICE", "cpu")
    monkeypatch.setattr(sp, "require_gpu", lambda: None)
    monkeypatch.setattr(sp, "available_backends", lambda: ("cusparselt", "cutlass"))
    monkeypatch.setattr(sp, "unavailable_backends", lambda: {})
    monkeypatch.setattr(sp, "graph_capture_error", lambda b: "probe said no" if b == "cutlass" else None)
    monkeypatch.setattr(sp, "speedup_provenance", lambda: provenance(device="cpu"))
    monkeypatch.setattr(sp, "build_stack", lambda model, dtype, device, seed=0: sp.DecoderStack(
        64, 128, 4, 1, dtype, device, seed))

    def check(w, b):
        assert w.device.type == "cpu" and w.shape in set(sp.LLAMA_SHAPES["7B"].values())
        if b == "cutlass":
            raise sp.SparseMismatch("stub mismatch")
        return 0.0

    stub = dict(median_ms=1.0, p10_ms=0.9, p90_ms=1.1, n=3, calls=1)
    monkeypatch.setattr(sp, "check_sparse_matches_dense", check)
    monkeypatch.setattr(sp, "time_linear", lambda shape, t, dtype, b, **kw: dict(stub, rows=t, copies=1))
    monkeypatch.setattr(sp, "time_decoder_stack", lambda *a, **kw: dict(stub, n_layers=1))

    paths = sp.run_all(tmp_path, ("float16",), models=("7B",), tokens=(16, 2048), decode_batches=(16,),
                       repeats=3, stack_repeats=2, progress=False)
    assert set(paths) == {"linear", "decoder_stack"}
    df = sp.load_results(tmp_path)
    lin, stk = df[df.family == "linear"], df[df.family == "decoder_stack"]
    assert len(lin) == 3 * 2 * 2 * 3 and len(stk) == 2 * 2 * 3  # groups x tokens x modes x backends; phases
    assert lin[lin.backend == "cutlass"].error.str.contains("stub mismatch").all()
    assert lin[lin.backend != "cutlass"].error.isna().all()
    assert stk[(stk.backend == "cutlass") & (stk["mode"] == "graph")].error.str.contains("probe said no").all()
    assert set(sp.speedup_table(df).speedup) == {1.0}
    rec = sp.load_records(tmp_path)[0]
    assert rec["complete"] and rec["settings"]["no_graph_capture"] == {"cutlass": "probe said no"}

    # with no time left nothing is measured, and every configuration still says why it has no time
    sp.run_all(tmp_path / "late", ("float16",), models=("7B",), tokens=(16,), decode_batches=(16,),
               budget_s=-1, progress=False)
    late = sp.load_results(tmp_path / "late")
    assert len(late) == 3 * 2 * 3 + 2 * 2 * 3 and late.median_ms.isna().all()
    assert (late.error.str.startswith("skipped: time budget") | late.error.str.contains("probe said no")).all()
