"""wanda_core.gpu.speedup on CPU: shapes, 2:4 weights, the record round trip, the no-GPU message, the
decoder stack's dense forward (checked against Hugging Face's LLaMA), and the CPU rehearsal of every
GPU part (speed-up suite, pruning time at LLaMA shape, block offload). Timing itself needs CUDA."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wanda_core.gpu import llama_scale
from wanda_core.gpu import speedup as sp
from wanda_core.runs.config import RunConfig
from wanda_core.study.experiments import speedup as xs
from wanda_core.study.experiments import timing as xt
from wanda_core.runs.records import atomic_write_json, provenance
from wanda_core.gpu.speedup import device as sdev, sparse24, stack as sstack, suite

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
        r = sparse24.padded_rows(t, "float16")
        assert r >= t and r % 8 == 0 and r - t < 64
    assert sparse24.padded_rows(2048) == 2048 and all(sparse24.padded_rows(t) == t for t in suite.LINEAR_TOKENS)


def test_compare_accepts_rounding_and_rejects_wrong_products():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(16, 32, generator=g).half()
    assert sparse24.compare(y.clone(), y) == 0.0
    assert sparse24.compare((y.float() * (1 + 1e-3)).half(), y) < 1e-2
    with pytest.raises(sp.SparseMismatch, match="differs from the dense product"):
        sparse24.compare(y.flip(0), y)
    with pytest.raises(sp.SparseMismatch):
        sparse24.compare(torch.full_like(y, float("nan")), y)
    with pytest.raises(sp.SparseMismatch, match="shape"):
        sparse24.compare(y.t(), y)


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


def test_paper_speedup_numbers_come_from_the_csv_with_their_flag():
    p = xs.speedup(Path("/nonexistent"))["paper"]
    assert set(p["table"]) == {"Speed-up"} and {"yes", "no"} >= set(p["verified"].str.lower())
    e2e = p[(p.metric == "end_to_end_speedup_A6000") & (p.verified == "yes")]
    assert e2e["value"].tolist() == [1.24]


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
        suite.main(["--out", str(tmp_path / "out"), "--quick"])


def test_to_sparse_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        sp.to_sparse(torch.zeros(32, 32), "triton")
    w = torch.zeros(32, 32)
    assert sp.to_sparse(w, "dense") is w


def test_decoder_stack_dense_forward_shapes():
    st = sp.DecoderStack(dim=64, inter=128, heads=4, n_layers=2, dtype="float32", device="cpu")
    assert sum(isinstance(m, sstack.SwapLinear) for m in st.modules()) == 2 * 7
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


def test_compressed_forms_get_2d_padded_input_and_give_contiguous_rows():
    """The 2:4 path of SwapLinear, on the CPU with a stand-in form that returns its product transposed
    in memory as cuSPARSELt does: same values as the dense weight, any batch shape, row-major output."""
    st = sp.DecoderStack(dim=64, inter=128, heads=4, n_layers=1, dtype="float32", device="cpu", seed=3)
    seen = []
    for m in st.modules():
        if isinstance(m, sstack.SwapLinear):
            m.forms["stand-in"] = m.forms["dense"].clone()
    real_linear = sstack.F.linear

    def linear(x, weight):
        if any(weight is m.forms.get("stand-in") for m in st.modules() if isinstance(m, sstack.SwapLinear)):
            seen.append(tuple(x.shape))
            return torch.mm(weight, x.t()).t()  # the transposed layout of the sparse kernels
        return real_linear(x, weight)

    x = torch.randn(3, 5, 64)  # 15 rows: not a multiple of any kernel's row alignment
    ref = st(x)
    st.setup_cache(max_batch=3, kv_len=6)
    ref_dec = st(x[:, :1], decode=True)
    sstack.F.linear, saved = linear, sstack.F.linear
    try:
        assert st.check_block(x, "stand-in") < 1e-5
        st.use("stand-in", verify=False)
        torch.testing.assert_close(st(x), ref)
        torch.testing.assert_close(st(x[:, :1], decode=True), ref_dec)
        y = st.layers[0].q(x)
    finally:
        sstack.F.linear = saved
    assert y.is_contiguous() and y.shape == (3, 5, 64)
    assert seen and all(len(s) == 2 and s[0] == sparse24.padded_rows(s[0]) for s in seen)


def test_speedup_verdict_reads_the_frames():
    import pandas as pd

    from wanda_core.report import speedup as fc

    blocks = pd.DataFrame(dict(mode=["graph", "graph", "eager"], speedup=[1.2, 1.4, 0.5]))
    stack = pd.DataFrame(dict(mode=["graph", "graph", "eager"], phase=["prefill", "decode", "prefill"],
                              speedup=[0.9, 0.6, 0.4]))
    paper = pd.DataFrame(dict(metric=["end_to_end_speedup_A6000"], value=[1.24]))
    v = fc.speedup_verdict(dict(blocks=blocks, stack=stack, paper=paper))
    assert "1.20x-1.40x" in v and "0.50x" in v and "prefill **0.90x**" in v and "slower end to end" in v and "1.24x" in v
    v = fc.speedup_verdict(dict(blocks=blocks, stack=stack.assign(speedup=[1.1, 1.3, 0.4]), paper=paper.iloc[:0]))
    assert "faster end to end" in v and "paper" not in v
    assert fc.speedup_verdict(dict(blocks=blocks.iloc[:0], stack=stack, paper=paper)) == ""


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
    sparse24.compare(sparse, dense, "decoder stack")


def test_run_all_bookkeeping_on_cpu_with_stubbed_timers(tmp_path, monkeypatch):
    """run_all's loops, error rows, budget and records, with the GPU checks and timers replaced by stubs."""
    monkeypatch.setattr(suite, "gpu_provenance", lambda device: provenance(device="cpu"))
    monkeypatch.setattr(suite, "build_stack", lambda model, dtype, device, seed=0, dims=None: sp.DecoderStack(
        64, 128, 4, 1, dtype, device, seed))

    def check(w, b):
        assert w.device.type == "cpu" and w.shape in set(sparse24.linear_shapes("tiny", suite.REHEARSAL_DIMS).values())
        if b == "cutlass":
            raise sp.SparseMismatch("stub mismatch")
        return 0.0

    stub = dict(median_ms=1.0, p10_ms=0.9, p90_ms=1.1, n=3, calls=1)
    monkeypatch.setattr(suite, "check_sparse_matches_dense", check)
    monkeypatch.setattr(suite, "time_linear", lambda shape, t, dtype, b, **kw: dict(stub, rows=t, copies=1))
    monkeypatch.setattr(suite, "time_decoder_stack", lambda *a, **kw: dict(stub, n_layers=1))

    kw = dict(models=("tiny",), decode_batches=(16,), backends=("cusparselt", "cutlass"), progress=False, device="cpu",
              stack_model="tiny", dims=suite.REHEARSAL_DIMS)
    paths = sp.run_all(tmp_path, ("float16",), tokens=(16, 2048), repeats=3, stack_repeats=2, **kw)
    assert set(paths) == {"linear", "decoder_stack"}
    assert sp.load_results(tmp_path).empty  # CPU records are rehearsals: hidden from the book's reader
    df = sp.load_results(tmp_path, rehearsal=True)
    lin, stk = df[df.family == "linear"], df[df.family == "decoder_stack"]
    assert len(lin) == 3 * 2 * 2 * 3 and len(stk) == 2 * 2 * 3  # groups x tokens x modes x backends; phases
    assert lin[lin.backend == "cutlass"].error.str.contains("stub mismatch").all()
    assert lin[(lin.backend == "cusparselt") & (lin["mode"] == "eager")].error.isna().all()
    assert stk[(stk.backend != "dense") & (stk["mode"] == "graph")].error.str.contains("no CUDA device").all()
    assert set(sp.speedup_table(df).speedup) == {1.0}
    rec = sp.load_records(tmp_path, rehearsal=True)[0]
    assert rec["complete"] and rec["rehearsal"] and rec["settings"]["device"] == "cpu"

    # with no time left nothing is measured, and every configuration still says why it has no time
    sp.run_all(tmp_path / "late", ("float16",), tokens=(16,), budget_s=-1, **kw)
    late = sp.load_results(tmp_path / "late", rehearsal=True)
    assert len(late) == 3 * 2 * 3 + 2 * 2 * 3 and late.median_ms.isna().all()
    assert (late.error.str.startswith("skipped: time budget") | late.error.str.contains("no CUDA device")).all()


# --- the CPU rehearsal of the GPU session (make gpu) ---------------------------------------------


def test_speedup_rehearsal_times_the_dense_path_on_cpu(tmp_path):
    suite.rehearse(tmp_path)
    df = sp.load_results(tmp_path, rehearsal=True)
    dense = df[(df.backend == "dense") & (df["mode"] == "eager")]
    assert len(dense) == 2 * 3 * 2 + 2 * 2 and (dense.median_ms > 0).all() and dense.error.isna().all()
    sparse = df[df.backend != "dense"]
    assert sparse.median_ms.isna().all() and sparse.error.notna().all()  # no GPU: said, not faked
    assert set(df[df.family == "decoder_stack"].phase) == {"prefill", "decode"}


def test_random_llama_is_finite_and_has_real_rotary_tables():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    m = llama_scale.random_llama("tiny", torch.float32, "cpu", seed=1)
    ref = LlamaRotaryEmbedding(llama_scale.llama_config("tiny"))
    torch.testing.assert_close(m.model.rotary_emb.inv_freq, ref.inv_freq)
    w = m.model.layers[0].mlp.down_proj.weight
    assert abs(float(w.std()) - 0.02) < 2e-3 and bool((m.model.norm.weight == 1).all())
    with torch.no_grad():
        logits = m(input_ids=llama_scale.random_windows(2, 16, 256)).logits
    assert logits.shape == (2, 16, 256) and torch.isfinite(logits).all()
    full = llama_scale._keep_blocks(m, 1)
    assert len(m.model.layers) == 1 and len(full) == 4 and llama_scale.find_blocks(m) is m.model.layers
    llama_scale._keep_blocks(m, 4)
    assert list(m.model.layers) == full and m.config.num_hidden_layers == 4


def test_scale_hand_computed():
    run = dict(blocks=2, total_blocks=8, nsamples=32,
               seconds=dict(capture=1.0, statistics_forward=2.0, score_mask=3.0, reforward=1.0, total=7.5))
    s = llama_scale.scale(run)  # blocks x4, windows x4; 0.5 s "other" scales with blocks only
    assert s["block_factor"] == 4 and s["window_factor"] == 4 and s["score_mask_s"] == 12.0
    assert s["total_s"] == pytest.approx(1.0 * 4 + 3.0 * 4 * 4 + (3.0 + 0.5) * 4)


def test_pruning_time_rehearsal_prunes_every_block_and_reads_back(tmp_path):
    p = llama_scale.pruning_time(tmp_path / "pruning_time", "tiny", nsamples=2, seqlen=16, budget_s=120, device="cpu",
                             dtype=torch.float32)
    rec = sp.load_records(p.parent, rehearsal=True, kind=llama_scale.RECORD_KIND)[0]
    assert rec["complete"] and rec["rehearsal"] and rec["provenance"]["device"]["type"] == "cpu"
    assert [(r["method"], r["phase"]) for r in rec["runs"]] == [
        ("wanda", "probe"), ("wanda", "model"), ("sparsegpt", "probe"), ("sparsegpt", "model")]
    for r in rec["runs"]:
        assert r["error"] is None and r["sparsity"] == pytest.approx(0.5, abs=1e-3)
        assert r["seconds"]["score_mask"] > 0
    assert xt.gpu_runs(p.parent).empty  # rehearsals never reach the book
    g = xt.gpu_runs(p.parent, rehearsal=True)
    model = g[g.phase == "model"]
    assert (model.blocks == 4).all() and (model.window_factor == 64).all()
    assert (model.model_score_mask_s == model.score_mask_s).all()  # every block measured: nothing scaled


def test_pruning_time_out_of_budget_ends_cleanly_with_a_record(tmp_path):
    p = llama_scale.pruning_time(tmp_path, "tiny", nsamples=2, seqlen=16, budget_s=0, device="cpu", dtype=torch.float32,
                             methods=("wanda",))
    rec = sp.load_records(tmp_path, rehearsal=True, kind=llama_scale.RECORD_KIND)[0]
    assert p.exists() and rec["complete"]
    assert rec["runs"][0]["error"].startswith("BudgetExceeded") and rec["runs"][0]["seconds"] is None


def test_offload_rehearsal(tmp_path):
    llama_scale.offload(tmp_path, "tiny", cap_gib=0.5 / 1024, nsamples=2, seqlen=16, device="cpu", dtype=torch.float32)
    o = xt.offload_runs(tmp_path, rehearsal=True)
    assert len(o) == 1 and o.fits_without_offload.item() is False  # the whole model does not fit the cap
    assert "simulated cap" in o.without_offload_error.item() and o.model_gib.item() > o.cap_gib.item()
    if "offload" not in {f.name for f in dataclasses.fields(RunConfig)}:
        assert "no field 'offload'" in o.error.item()  # said plainly until the engine's offload is merged
    else:
        assert o.error.isna().item() and o.total_s.item() > 0


@pytest.mark.skipif("offload" not in {f.name for f in dataclasses.fields(RunConfig)},
                    reason="block offload (RunConfig.offload) is not in this checkout yet")
def test_offloaded_prune_equals_the_plain_one():
    from wanda_core.prune.engine import prune_model

    windows = llama_scale.random_windows(2, 16, 256)
    out = []
    for off in (False, True):
        m = llama_scale.random_llama("tiny", torch.float32, "cpu", seed=3)
        prune_model(m, RunConfig(method="wanda", nsamples=2, seqlen=16, offload=off), windows, progress=False)
        out.append(m.state_dict())
    for k in out[0]:
        torch.testing.assert_close(out[0][k], out[1][k], rtol=0, atol=0)


def test_speedup_experiment_weights_layer_groups_by_count(tmp_path):
    rows = [dict(family="linear", model="7B", layer=g, out_features=1, in_features=4, tokens=2048, rows=2048,
                 dtype="float16", backend=b, mode="eager", median_ms=ms, p10_ms=ms, p90_ms=ms, n=3, calls=1,
                 copies=1, error=None)
            for g, d, s in (("q/k/v/o", 1.0, 0.5), ("gate/up", 2.0, 1.0), ("down", 2.0, 2.0))
            for b, ms in (("dense", d), ("cusparselt", s))]
    atomic_write_json(tmp_path / "linear.json", _synthetic_record("linear", rows))
    s = xs.speedup(tmp_path)
    assert s["layers"].set_index("layer").speedup.to_dict() == {"q/k/v/o": 2.0, "gate/up": 2.0, "down": 1.0}
    # a block: 4 x (1 vs 0.5) + 2 x (2 vs 1) + 1 x (2 vs 2) = 10 ms dense against 6 ms 2:4
    assert s["blocks"].speedup.item() == pytest.approx(10 / 6)
    assert s["stack"].empty and s["errors"].empty and len(s["provenance"]) == 1
    empty = xs.speedup(tmp_path / "none")
    assert all(empty[k].empty for k in ("layers", "blocks", "tokens", "stack", "provenance"))


def test_gpu_all_script_is_valid_bash_and_its_three_commands_exist():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_all.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    parts = [line.split('"$PY" -m ', 1)[1].split(" --", 1)[0].split() for line in script.read_text().splitlines()
             if line.startswith("part ")]
    assert [p[0] for p in parts] == ["wanda_core.gpu.llama_scale", "wanda_core.gpu.speedup", "wanda_core.gpu.llama_scale"]
    for module_and_sub in parts:  # each command the script runs parses its arguments (module and subcommand exist)
        r = subprocess.run([sys.executable, "-m", *module_and_sub, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage" in r.stdout, (module_and_sub, r.stderr[-500:])
