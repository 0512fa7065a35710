"""The pipelined datapath in Amaranth's simulator: the C-slow MAC array (L interleaved outputs per PE
through an L-stage binary32 adder) and the staged DSU, bit-exact against golden, latency and
initiation interval asserted, under random valid/ready patterns."""

from __future__ import annotations

import numpy as np
import pytest

from hw import Book, DSUConfig, MACArrayConfig, UnitTiming, unit_timing
from hw.layouts import mac_in_layout, mac_out_layout
from hw.mac_array import MACArray
from sim import reference, stimulus
from sim.amaranth_bench import run_stream
from sim.payload import PayloadCodec


def interleaved_batch(config: MACArrayConfig, rng: np.random.Generator, groups_per_length: int = 2):
    """Groups of L jobs with the same K length, their beats interleaved slot by slot (beat n -> slot n mod L).

    Returns the packed beats, the expected outputs (uint32 (jobs, rows, cols), slot order) and the
    index of each output's `last` beat."""
    single = MACArrayConfig(rows=config.rows, cols=config.cols, block=config.block)
    slots = config.interleave
    jobs = []
    for mode in stimulus.MAC_MODES:
        jobs += stimulus.mac_jobs(rng, single, groups_per_length * slots, mode)
    by_length: dict[int, list] = {}
    for job in jobs:
        by_length.setdefault(job[0].num_blocks, []).append(job)
    fields: dict[str, list] = {}
    expected, last_beats, beat = [], [], 0
    for length, members in sorted(by_length.items()):
        for g in range(len(members) // slots):
            group = members[g * slots : (g + 1) * slots]
            per_job = [stimulus.mac_beats(single, [job]) for job in group]
            for key in per_job[0]:
                stacked = np.stack([f[key] for f in per_job], axis=1)  # (length, L, ...)
                fields.setdefault(key, []).append(stacked.reshape(length * slots, *stacked.shape[2:]))
            expected += [reference.mac_reference(a, w) for a, w in group]
            last_beats += [beat + (length - 1) * slots + s for s in range(slots)]
            beat += length * slots
    fields = {k: np.concatenate(v) for k, v in fields.items()}
    return PayloadCodec(mac_in_layout(config)).pack(fields), np.stack(expected), last_beats


def check_mac(config, *, seed=0, valid=None, ready=None):
    payloads, expected, last_beats = interleaved_batch(config, np.random.default_rng(seed))
    run = run_stream(MACArray(config), payloads, valid=valid, ready=ready, expected_outputs=len(expected))
    got = PayloadCodec(mac_out_layout(config)).unpack(run.outputs)[""].astype(np.uint32)
    nan = np.isnan(got.view(np.float32)) & np.isnan(expected.view(np.float32))
    bad = np.flatnonzero(((got != expected) & ~nan).any((1, 2)))
    assert not len(bad), f"{len(bad)} of {len(expected)} outputs differ, first job {bad[0]}"
    return run, last_beats


C_SLOW = [MACArrayConfig(rows=2, cols=2, block=16, interleave=4), MACArrayConfig(rows=1, cols=2, block=32, interleave=5),
          MACArrayConfig(rows=2, cols=1, block=16, interleave=2), MACArrayConfig(rows=1, cols=1, block=16, interleave=7),
          MACArrayConfig(rows=1, cols=2, block=16, interleave=3), MACArrayConfig(rows=2, cols=2, block=16, interleave=6),
          MACArrayConfig(rows=1, cols=2, block=32, interleave=8), MACArrayConfig(rows=2, cols=1, block=16, interleave=9)]  # fmt: skip


@pytest.mark.parametrize("config", C_SLOW, ids=[c.name for c in C_SLOW])
def test_c_slow_mac_array_is_bit_exact_at_full_rate(config):
    run, last_beats = check_mac(config)
    latency = unit_timing(config).latency
    assert latency == 9 + config.interleave
    assert [run.out_cycles[j] - run.in_cycles[b] for j, b in enumerate(last_beats)] == [latency] * len(last_beats)
    assert set(np.diff(run.in_cycles).tolist()) == {1}, "initiation interval 1 (every cycle a beat)"


@pytest.mark.parametrize("config", C_SLOW[:2], ids=[c.name for c in C_SLOW[:2]])
def test_c_slow_mac_array_is_bit_exact_under_back_pressure(config):
    rng = np.random.default_rng(3)
    check_mac(config, seed=1, valid=iter((rng.random(10**6) < 0.7).tolist()),
              ready=iter((rng.random(10**6) < 0.5).tolist()))  # fmt: skip


def test_pipelined_dsu_timing():
    assert unit_timing(DSUConfig(book=Book.FB32, pipeline_stages=4)) == UnitTiming(latency=5, initiation_interval=1)
    # 13 logic levels at B = 32: more cuts than levels saturate at one register per level.
    assert unit_timing(DSUConfig(book=Book.FB32, pipeline_stages=99)).latency == 14


def test_nvfp4_mac_array_latency_and_initiation_interval():
    """The NVFP4 PE's fourteen stages before the ring (products, partial sums, halves, magnitude, the
    block-scale product in two, the tensor-scale product in three, the term in five): latency 16 + L,
    one beat per cycle (bit-exactness: tests/test_tile_pipeline.py's NVFP4 tile)."""
    config = MACArrayConfig(rows=1, cols=2, block=16, interleave=4, nvfp4=True)
    half = MACArrayConfig(rows=1, cols=2, block=16, interleave=4)
    assert mac_in_layout(config) == mac_in_layout(half)
    payloads, expected, last_beats = interleaved_batch(half, np.random.default_rng(5), groups_per_length=1)
    run = run_stream(MACArray(config), payloads, expected_outputs=len(expected))
    latency = unit_timing(config).latency
    assert latency == 16 + config.interleave
    assert [run.out_cycles[j] - run.in_cycles[b] for j, b in enumerate(last_beats)] == [latency] * len(last_beats)
    assert set(np.diff(run.in_cycles).tolist()) == {1}
