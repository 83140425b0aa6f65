"""Which GPU this is and what it can run: availability checks and the provenance of GPU records.

    from wanda_core.gpu.speedup.device import gpu_available, available_backends, gpu_provenance

Every GPU record (2:4 timings, pruning time at LLaMA scale, block offload) carries
`gpu_provenance()`: `records.provenance` plus the driver, CUDA, cuSPARSELt and clocks that a
timing depends on. On a machine without a GPU it still works (the fields are None), so the CPU
rehearsal writes records of the same shape.
"""
from __future__ import annotations

import subprocess
from typing import Any

import torch

from wanda_core.runs.records import provenance

NO_GPU_MESSAGE = (
    "no CUDA GPU: 2:4 speed-up needs NVIDIA sparse tensor cores (Ampere or newer); "
    "the committed results in results/speedup/ are shown instead"
)


class SpeedupUnavailable(RuntimeError):
    """Raised by measurement entry points on a machine without a suitable NVIDIA GPU."""


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
    """Sparse backends usable on this machine, in ("cusparselt", "cutlass") order."""
    bad = unavailable_backends()
    return tuple(b for b in ("cusparselt", "cutlass") if b not in bad)


def l2_bytes() -> int:
    """The GPU's L2 cache size (50 MiB if the driver does not say)."""
    return getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0) or 50 << 20


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


def gpu_provenance(device: str | None = None) -> dict[str, Any]:
    """`records.provenance` plus what a GPU timing depends on: driver, CUDA, cuSPARSELt, L2, clocks."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    p = provenance(device=device)
    on_gpu = str(device).startswith("cuda") and torch.cuda.is_available()
    smi = _nvidia_smi() if on_gpu else []
    cslt = getattr(torch.backends, "cusparselt", None)
    v = cslt.version() if cslt is not None and cslt.is_available() else None
    p["device"].update(
        driver=(smi[0]["driver_version"] if smi else _nvml_driver()) if on_gpu else None,
        nvidia_smi=smi,
        cusparselt=f"{v // 1000}.{v % 1000 // 100}.{v % 100}" if v else None,
        cusparselt_int=v,
        l2_bytes=l2_bytes() if on_gpu else None,
        memory_bytes=torch.cuda.get_device_properties(0).total_memory if on_gpu else None,
    )
    p["versions"]["cuda"] = torch.version.cuda
    return p


class Budget:
    """Seconds a part of a GPU session may spend: work starts only while time is left, so a slow
    GPU ends a part cleanly (with what it measured written) instead of being killed."""

    def __init__(self, seconds: float):
        import time

        self._now = time.monotonic
        self.seconds, self.t0 = float(seconds), time.monotonic()

    def elapsed(self) -> float:
        return self._now() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def over(self) -> bool:
        return self.left() < 0
