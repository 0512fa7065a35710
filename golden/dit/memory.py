"""Peak memory of a region of code, above its start: the extra memory the region needed.

On CUDA it is the caching allocator's peak (``torch.cuda.max_memory_allocated``) above the memory
allocated at entry. On the CPU it is the resident set size, sampled every 5 ms by a background
thread (``/proc/self/statm``), above the size at entry. The process-wide peak (``ru_maxrss``) would
not do: it never falls, so a region that needs less than the process once held reads 0.
"""

from __future__ import annotations

import os
import threading

import torch

__all__ = ["PeakMemory", "resident_bytes"]

SAMPLE_PERIOD_S = 0.005


def resident_bytes() -> int:
    """This process's resident set size now, in bytes (Linux ``/proc``; 0 where it is absent)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``; afterwards ``peak.bytes`` is the region's peak."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_PERIOD_S):
            self._highest = max(self._highest, resident_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._highest = resident_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            highest = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            highest = max(self._highest, resident_bytes())
        self.bytes = max(0, highest - self._base)
