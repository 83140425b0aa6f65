"""Memory a run holds: the process's resident set, its peak during a block of work (CPU sampled,
CUDA allocated), and handing freed memory back to the system between runs."""
from __future__ import annotations

import os
import threading

import torch


def resident_bytes() -> int:
    """This process's resident set now (/proc/self/statm; the peak so far where there is no /proc)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated memory (CUDA) during a block."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.peak = 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self._stop = threading.Event()
            self.peak = self.start = resident_bytes()

            def sample():
                while not self._stop.wait(0.05):
                    self.peak = max(self.peak, resident_bytes())

            self._t = threading.Thread(target=sample, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._t.join()
            self.peak = max(self.peak, resident_bytes())

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def increase_mb(self) -> float:
        """Peak above what was held at the start (the model itself is held before)."""
        return round((self.peak - self.start) / 2**20, 1)


def release_freed_memory() -> None:
    """Hand memory freed by Python and glibc back to the system (malloc_trim): a notebook kernel
    that has loaded, pruned and dropped several models otherwise keeps their pages resident, and
    every later run's peak starts from that much higher."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
