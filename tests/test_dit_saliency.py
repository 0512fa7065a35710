"""Saliency (chunked, memory-bounded), salient-token choice and SeDA grouping (ALGORITHMS.md 2-3)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from golden import FB32, lut_costs
from golden.blocks import BlockedTensor, front_end
from golden.dit.saliency import (
    anchor_attention,
    attention_saliency,
    choose_families,
    salient_tokens,
    seda_groups,
    token_coordinates,
)


def _qk(batch=2, length=40, heads=3, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, heads, dim, generator=g), torch.randn(
        batch, length, heads, dim, generator=g
    )


def _full_probs(q, k, mask):
    logits = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    return logits.softmax(-1)


@pytest.mark.parametrize("chunk_bytes", [1, 4096, 1 << 30])
def test_chunked_saliency_equals_full_attention(chunk_bytes):
    q, k = _qk()
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, -3:] = False  # padded text tokens of the second sample
    s = attention_saliency(
        q, k, num_video=32, offset=0, key_mask=mask, max_queries=1000, chunk_bytes=chunk_bytes
    )
    expected = _full_probs(q, k, mask)[:, :, :32, :32].mean(dim=(1, 2))
    torch.testing.assert_close(s.double(), expected, rtol=1e-5, atol=1e-7)


def test_saliency_uses_a_strided_subset_of_video_queries_after_an_offset():
    q, k = _qk(length=30)
    s = attention_saliency(q, k, num_video=24, offset=6, max_queries=8)
    queries = torch.arange(6, 30, 3)
    expected = _full_probs(q, k, None)[:, :, queries][..., 6:].mean(dim=(1, 2))
    torch.testing.assert_close(s.double(), expected, rtol=1e-5, atol=1e-7)


def test_salient_tokens_are_the_top_rho_fraction_ties_to_lower_index():
    s = torch.tensor([[0.1, 0.5, 0.2, 0.5, 0.0, 0.3]])
    assert salient_tokens(s, 3).tolist() == [[1, 3, 5]]
    assert salient_tokens(s, 0).shape == (1, 0)


def test_anchor_attention_rows_match_full_attention():
    q, k = _qk()
    anchors = torch.tensor([[0, 7, 31], [4, 5, 20]])
    rows = anchor_attention(q, k, anchors, num_video=32, chunk_bytes=1)
    full = _full_probs(q, k, None).mean(1)[..., :32]  # (batch, L, 32)
    expected = torch.stack([full[b, anchors[b]] for b in range(2)])
    torch.testing.assert_close(rows.double(), expected, rtol=1e-5, atol=1e-7)


def _reference_groups(weights, anchors, grid, window, k_c):
    """Plain-Python SeDA grouping (ALGORITHMS.md 3.2-3.3), one sample."""
    coords = token_coordinates(grid).tolist()
    anchor_set = set(anchors)
    best = {}
    for pos, a in enumerate(anchors):
        candidates = [
            j for j in range(len(coords))
            if j not in anchor_set and all(abs(coords[j][d] - coords[a][d]) <= window[d] for d in range(3))
        ]  # fmt: skip
        candidates.sort(key=lambda j: (-weights[pos][j], j))
        for j in candidates[:k_c]:
            if j not in best or weights[pos][j] > best[j][0]:
                best[j] = (weights[pos][j], pos)
    groups = [-1] * len(coords)
    for j, (_, pos) in best.items():
        groups[j] = pos
    for pos, a in enumerate(anchors):
        groups[a] = pos
    return groups


@pytest.mark.parametrize(("window", "k_c"), [((1, 4, 4), 8), ((0, 1, 1), 3), ((2, 0, 5), 50)])
def test_seda_groups_match_the_reference(window, k_c):
    grid = (3, 4, 5)
    g = torch.Generator().manual_seed(1)
    anchors = torch.stack([torch.randperm(60, generator=g)[:4].sort().values for _ in range(2)])
    weights = torch.rand(2, 4, 60, generator=g)
    groups = seda_groups(weights, anchors, grid=grid, window=window, k_c=k_c)
    for b in range(2):
        expected = _reference_groups(weights[b].tolist(), anchors[b].tolist(), grid, window, k_c)
        assert groups[b].tolist() == expected
        assert (groups[b] >= 0).sum() <= 4 * (k_c + 1)


def test_family_choice_minimises_the_summed_per_family_lut_cost():
    g = torch.Generator().manual_seed(2)
    rows = torch.randn(2, 3, 96, generator=g) * torch.rand(96, generator=g) * 4
    families = choose_families(rows, block=32)
    _, u, _ = front_end(BlockedTensor(rows, 32).values)
    costs = lut_costs(u, FB32)  # (2, 3, 3 blocks, 32 dialects)
    for b in range(2):
        for a in range(3):
            totals = [
                sum(int(costs[b, a, blk, f * 8 : f * 8 + 8].min()) for blk in range(3)) for f in range(4)
            ]
            assert families[b, a] == totals.index(min(totals))


_MEMORY_SCRIPT = """
import json, math, torch
from golden.dit.saliency import attention_saliency

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

def measure(fn):
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS (VmHWM) to the current RSS
    base = rss("VmRSS")
    fn()
    return rss("VmHWM") - base

torch.manual_seed(0)
batch, length, heads, dim = 1, 4096, 8, 16
q, k = torch.randn(batch, length, heads, dim), torch.randn(batch, length, heads, dim)
attention_saliency(q[:, :256], k[:, :256], num_video=256, chunk_bytes=CHUNK)  # warm up the kernels' buffers
chunked = measure(lambda: attention_saliency(q, k, num_video=length, max_queries=length, chunk_bytes=CHUNK))
full = measure(lambda: torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dim), -1).sum((1, 2)))
print(json.dumps({"chunked": chunked, "full": full, "tile": batch * heads * length * length * 4}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS is read from /proc/self (Linux)")
def test_saliency_peak_memory_stays_under_the_documented_bound():
    chunk = 8 << 20
    script = _MEMORY_SCRIPT.replace("CHUNK", str(chunk))
    # A fixed mmap threshold makes glibc return every large block to the OS when it is freed, so the
    # peak RSS measures live tensors (its dynamic threshold would keep freed chunks resident).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak = json.loads(result.stdout.strip().splitlines()[-1])
    bound = 3 * chunk + (16 << 20)  # README.md, "Saliency memory bound"
    assert peak["tile"] == 512 << 20
    assert peak["full"] >= peak["tile"], "the measurement must see a full L x L attention matrix"
    assert peak["chunked"] < bound, peak
