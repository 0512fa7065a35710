"""golden.dit.memory: the peak memory a region needed, above its start."""

import time

import torch

from golden.dit.memory import PeakMemory, resident_bytes


def test_a_region_below_the_process_peak_still_reads_its_own_growth():
    # First raise this process's all-time peak well above what the region will need: the old
    # ru_maxrss-based figure read 0 for such a region.
    big = torch.ones(256 << 20, dtype=torch.uint8)
    big += 1
    del big
    with PeakMemory("cpu") as peak:
        block = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, touched, held while sampled
        block += 1
        time.sleep(0.05)
        del block
    assert 48 << 20 <= peak.bytes <= 512 << 20


def test_an_idle_region_reads_little_and_never_negative():
    with PeakMemory("cpu") as peak:
        time.sleep(0.02)
    assert 0 <= peak.bytes < 32 << 20
    assert resident_bytes() > 0
