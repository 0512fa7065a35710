"""Amaranth Python-simulator tests of every unit: bit-exact against golden, latency and II asserted.

Small configurations and batches (the Verilator runs in ``test_sim_units.py`` do the big sweeps);
stimulus and scoreboard are shared with cocotb through ``sim.cases``.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import pytest

from hw import Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig, UnitTiming, build_unit, unit_timing
from hw.config import config_from_json
from sim.amaranth_bench import run_stream
from sim.cases import unit_case

#: (config, beats) pairs: every unit, both formatbooks, full and partial DSU parallelism.
CONFIGS = [
    (FrontEndConfig(block=32), 60),
    (FrontEndConfig(block=16), 30),
    (DSUConfig(book=Book.FB32, block=16), 120),
    (DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=8), 120),
    (DSUConfig(book=Book.DIALECTFP4_16, block=32), 150),
    (DSUConfig(book=Book.DIALECTFP4_16, block=16, dialects_per_cycle=1), 80),
    (DSUConfig(book=Book.FB32, block=32, pipeline_stages=4), 120),
    (DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=1), 80),
    (DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=20), 80),
    (TwoStageConfig(block=32), 150),
    (TwoStageConfig(block=64), 60),
    (TwoStageConfig(block=32, pipeline_stages=8), 150),
    (TwoStageConfig(block=32, pipeline_stages=13), 150),  # the tiles' configuration (one cut per level)
    (TwoStageConfig(block=16, pipeline_stages=20), 60),
    (DecoderConfig(lanes=3), 0),
    (DecoderConfig(books=(Book.E2M1,), lanes=8), 0),
    (MACArrayConfig(rows=1, cols=2, block=16), 30),
    (MACArrayConfig(rows=2, cols=1, block=32), 18),
    (MACArrayConfig(rows=1, cols=1, block=64), 12),
]


def check_unit(config, beats, *, seed=0, valid=None, ready=None):
    case = unit_case(config)
    batch = case.stimulus(np.random.default_rng(seed), beats)
    run = run_stream(build_unit(config), batch.payloads, valid=valid, ready=ready,
                     expected_outputs=batch.expected_outputs)
    report = case.check(batch, run.outputs)
    assert not report, "\n".join(report)
    return case, batch, run


@pytest.mark.parametrize("config,beats", CONFIGS, ids=[c.name for c, _ in CONFIGS])
def test_bit_exact_under_backpressure(config, beats):
    rng = np.random.default_rng(7)
    check_unit(config, beats, valid=iter((rng.random(10**6) < 0.8).tolist()),
               ready=itertools.cycle([1, 1, 0, 1, 0, 0, 1]))


@pytest.mark.parametrize("config,beats", CONFIGS, ids=[c.name for c, _ in CONFIGS])
def test_latency_and_initiation_interval(config, beats):
    case, batch, run = check_unit(config, min(beats, 16) or 16)
    last_beats = [b - 1 for b in batch.first_beats[1:]] + [len(batch.payloads) - 1]
    latencies = {run.out_cycles[j] - run.in_cycles[b] for j, b in enumerate(last_beats)}
    assert latencies == {case.latency}
    assert set(np.diff(run.in_cycles).tolist()) == {case.initiation_interval}


def test_dsu_full_parallelism_takes_one_block_per_cycle():
    assert unit_timing(DSUConfig(book=Book.FB32)) == UnitTiming(latency=2, initiation_interval=1)
    assert unit_timing(DSUConfig(book=Book.FB32, dialects_per_cycle=4)) == UnitTiming(latency=9, initiation_interval=8)


def test_config_json_round_trip():
    for config, _ in CONFIGS:
        assert config_from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: DSUConfig(dialects_per_cycle=5), "must divide the 32 dialects"),
        (lambda: DSUConfig(book=Book.E2M1), "FB32 or DialectFP4-16"),
        (lambda: FrontEndConfig(block=24), "block size must be one of"),
        (lambda: MACArrayConfig(rows=0), "rows must be a positive integer, got 0"),
        (lambda: DecoderConfig(books=(Book.E2M1, Book.E2M1)), "must not repeat"),
        (lambda: DecoderConfig(lanes=-1), "lanes must be a positive integer"),
    ],
)
def test_config_errors_name_the_bad_value(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_configs_are_keyword_only():
    with pytest.raises(TypeError):
        DSUConfig(Book.FB32)  # noqa


def test_mac_corner_stimulus_reaches_its_corners():
    """The MAC corner modes really produce RNE ties, exact cancellation and subnormal results."""
    import golden
    from sim import stimulus

    config = MACArrayConfig(rows=2, cols=2, block=32)
    rng = np.random.default_rng(0)
    ties = 0
    for a, w in stimulus.mac_jobs(rng, config, 20, "tie"):
        t0, t1 = (t.double() for t in golden.block_terms(a, w))
        y = golden.quantized_matmul(a, w).double()
        half_ulp = torch.from_numpy(np.spacing(np.abs(y.numpy()).astype(np.float32)).astype(np.float64)) / 2
        ties += int(((t0 + t1 - y).abs() == half_ulp).sum())
    assert ties >= 10
    zeros = sum(int((golden.quantized_matmul(a, w) == 0).sum()) for a, w in stimulus.mac_jobs(rng, config, 20, "cancel"))
    assert zeros >= 20
    tiny = 0
    for a, w in stimulus.mac_jobs(rng, config, 20, "subnormal"):
        y = golden.quantized_matmul(a, w).abs()
        tiny += int(((y > 0) & (y < 2.0**-126)).sum())
    assert tiny >= 10


@pytest.mark.parametrize("width", [8, 100])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_skid_fifo_keeps_order_and_shows_a_beat_the_cycle_after_its_write(depth, width):
    """hw.pipeline.SkidFIFO against a deque: the writer writes only while it holds a credit (fewer than
    ``depth`` beats inside), random writes and reads, a reset in the middle; every beat comes out once,
    in order, and ``r_valid`` rises the cycle after the write into an empty FIFO. 100 bits: four chunks,
    each with its own pointer copies."""
    from collections import deque

    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from hw.pipeline import SkidFIFO

    dut = SkidFIFO(width, depth)
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = domain = ClockDomain("sync")
    rng = np.random.default_rng(depth)
    seen = {"out": [], "checked": 0}

    async def bench(ctx):
        model, value = deque(), 0
        for cycle in range(600):
            if cycle == 300:  # reset: the FIFO is empty afterwards
                ctx.set(domain.rst, 1)
                ctx.set(dut.w_en, 0)
                await ctx.tick()
                ctx.set(domain.rst, 0)
                model.clear()
            assert ctx.get(dut.r_valid) == bool(model)
            if model:
                assert ctx.get(dut.r_data) == model[0]
                seen["checked"] += 1
            write = len(model) < depth and rng.random() < 0.7
            read = rng.random() < 0.5
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, value)
            ctx.set(dut.r_en, read)
            await ctx.tick()
            if read and model:
                seen["out"].append(model.popleft())
            if write:
                model.append(value)
                value = (value * 0x9E3779B97F4A7C15 + 1) % (1 << width)  # every chunk changes

    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(bench)
    sim.run()
    assert seen["checked"] > 200 and len(seen["out"]) > 100
