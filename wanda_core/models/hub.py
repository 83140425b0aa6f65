"""The Hugging Face hub, used only by the `paper` profile: models, WikiText-2 and C4.

Offline, the HF libraries retry for ~25 s before failing. The first time a hub path is used (a
hub model id, WikiText-2/C4, a hub zero-shot task) we check once whether the hub can be reached
(a DNS lookup with a 1.5 s limit); if not, we switch the HF libraries to offline mode (their
environment variables, and their module constants if they are already imported) so that they
fail at once or read their cache, and we check the local cache ourselves to raise a message that
says what to do. `import wanda_core` touches no network; the embedded models and text never do.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

HUB_HOST = "huggingface.co"
_online: bool | None = None


def hub_reachable(timeout: float = 1.5) -> bool:
    """True if the hub's name resolves within `timeout` seconds (checked once per process, when
    first needed); if not, the HF libraries are switched to offline mode."""
    global _online
    if _online is not None:
        return _online
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        _online = False
        _go_offline()
        return False
    result: list[bool] = []

    def probe():
        try:
            socket.getaddrinfo(HUB_HOST, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    _online = bool(result and result[0])
    if not _online:
        _go_offline()
    return _online


def _go_offline() -> None:
    """HF offline mode: the environment for libraries imported later, the flags of those already
    imported (huggingface_hub and datasets read them at call time)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as hc

        hc.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        import datasets.config as dc

        dc.HF_HUB_OFFLINE = dc.HF_DATASETS_OFFLINE = True


def configure_env() -> None:
    """Quiet defaults for the HF libraries (no network involved; safe at import)."""
    # datasets pings S3 to count every load of its packaged builders (json: our local task files)
    os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class HubUnavailable(RuntimeError):
    pass


def _offline_error(what: str, name: str) -> HubUnavailable:
    return HubUnavailable(
        f"{what} {name!r} needs the Hugging Face hub, which cannot be reached from this machine "
        f"(offline), and it is not in the local cache. Use the embedded default (model "
        f"'smollm2-135m', text 'wiki'), a local directory / text file, or run on a machine with "
        f"internet (and `huggingface-cli login` for gated models such as LLaMA-2)."
    )


def load_pretrained(name: str, dtype):
    """AutoModelForCausalLM + AutoTokenizer from a local directory or a hub id."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"{local} is not a Hugging Face model directory (no config.json)")
        src = str(local)
    else:
        if not hub_reachable():
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
            if not isinstance(cached, str):
                raise _offline_error("model", name)
        src = name
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = AutoConfig.from_pretrained(src)
    archs = getattr(cfg, "architectures", None) or []
    causal = cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not (
        archs and not any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs))
    if not causal:
        raise ValueError(f"{name!r} is not a causal language model (architectures {archs}); Wanda prunes decoder LMs")
    try:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, attn_implementation="sdpa")
    except ValueError as e:
        raise ValueError(f"{name!r} could not be loaded as a causal language model: {e}") from e
    tok = AutoTokenizer.from_pretrained(src)
    return model, tok


def load_dataset_text(name: str) -> list[str]:
    """Texts of a hub dataset used by the paper: 'wikitext2' (test) or 'c4' (first train shard)."""
    if name not in ("wikitext2", "c4"):
        raise ValueError(f"unknown hub dataset {name!r}; valid: wikitext2, c4")
    hub_reachable()  # before datasets is used: offline, it reads its cache or fails at once
    import datasets

    datasets.disable_progress_bars()
    try:
        if name == "wikitext2":
            ds = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split="test")
        elif name == "c4":
            ds = datasets.load_dataset(
                "allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"}, split="train"
            )
        else:
            raise ValueError(f"unknown hub dataset {name!r}; valid: wikitext2, c4")
    except (ConnectionError, OSError, FileNotFoundError) as e:
        raise _offline_error("dataset", name) from e
    except Exception as e:  # datasets raises its own error types when offline
        if not hub_reachable():
            raise _offline_error("dataset", name) from e
        raise
    return list(ds["text"])
