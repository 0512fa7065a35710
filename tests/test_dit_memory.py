"""golden.dit.memory: the peak memory a region needed, above its start."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from golden.dit.memory import PeakMemory, resident_bytes

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh process with glibc's mmap threshold fixed, so every large block is a fresh mapping
# returned to the OS when freed (a long-lived test worker's allocator may instead reuse memory it
# already holds, and then correctly measures no growth).
_REGION_BELOW_THE_PROCESS_PEAK = """
import json, time, torch
from golden.dit.memory import PeakMemory
big = torch.ones(256 << 20, dtype=torch.uint8)  # raise this process's all-time peak first
big += 1
del big
with PeakMemory("cpu") as peak:
    block = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, touched, held while sampled
    block += 1
    time.sleep(0.1)
    del block
print(json.dumps(peak.bytes))
"""


def test_a_region_below_the_process_peak_still_reads_its_own_growth():
    # The old figure, the growth of ru_maxrss, read 0 here: the process had been larger before.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    out = subprocess.run(
        [sys.executable, "-c", _REGION_BELOW_THE_PROCESS_PEAK], cwd=REPO, env=env,
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    peak_bytes = json.loads(out.stdout.strip().splitlines()[-1])
    assert 48 << 20 <= peak_bytes <= 512 << 20


def test_an_idle_region_reads_little_and_never_negative():
    with PeakMemory("cpu") as peak:
        time.sleep(0.02)
    assert 0 <= peak.bytes < 32 << 20
    assert resident_bytes() > 0
