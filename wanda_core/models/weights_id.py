"""The identity of a model's weights, for run records (`model.weights_sha256`).

- embedded models: the sha256 of the cached model.safetensors, from its manifest (cache_manifest),
  checked against the file on every load;
- tiny random models: a sha256 over their tensors (`state_sha256`);
- local directories and hub ids: a sha256 over the weight files' hashes (`checkpoint_sha256`; the
  hub cache names its files by their sha256, so that costs nothing there).

Records made from different weights of one model are never reused for one another
(runner.load_record) nor mixed in one table (experiments.common.check_same_weights).
"""
from __future__ import annotations

from pathlib import Path

import torch


def state_sha256(model) -> str:
    """sha256 over a model's parameters and buffers (names, dtypes, shapes, bytes), in name order:
    the identity of weights that have no file (the tiny random models)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted({**dict(model.named_parameters()), **dict(model.named_buffers())}.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too
    return h.hexdigest()


def checkpoint_sha256(name: str) -> str | None:
    """Identity of a local or hub checkpoint's weight files: sha256 over (file name, file sha256),
    where a hub cache's blobs are already named by their sha256 (free); a local directory's files are
    hashed (seconds per GB). None when the files cannot be found."""
    import hashlib

    from wanda_core.models.cache_manifest import file_sha256

    p = Path(name).expanduser()
    if not p.is_dir():
        try:
            from huggingface_hub import snapshot_download

            p = Path(snapshot_download(name, local_files_only=True,
                                       allow_patterns=["*.safetensors", "*.bin", "*.json"]))
        except Exception:  # not in the local hub cache (or no hub library): no identity
            return None
    files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin") and f.is_file())
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        real = f.resolve()
        digest = real.name if f.is_symlink() and len(real.name) == 64 else file_sha256(f)
        h.update(f"{f.name}:{digest};".encode())
    return h.hexdigest()
