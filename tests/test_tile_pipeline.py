"""The buffered, C-slow tile in Amaranth's simulator: one shared quantizer writes each activation block
once, the array reads it ``col_groups * L`` times; bit-exact against golden under random valid/ready on
every stream, a reset in the middle of a stream, and >= 95 % sustained MAC utilization at full rate."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

import golden
from hw.layouts import mac_out_layout
from hw.tile import Tile, TileConfig, TileFormat, predicted_utilization, tile_a_layout, tile_w_layout
from hw.tile_front_end import InputFloat
from sim.payload import PayloadCodec
from sim.tile.workload import CaptureMismatch, record_workload


def synthetic_record(config: TileConfig, m: int, n: int, k: int, seed: int = 0):
    """A record like golden.dit's capture: random rows (some outliers), MSE-selected weights, no AD."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.exp2(torch.randint(-6, 6, (m, 1), generator=g).float())
    x[0, 3] = 40.0
    if config.format is TileFormat.NVFP4 and m > 3:
        x[3] = 0.0  # an all-zero row: block scales at their clamp
    if config.input is InputFloat.BF16:
        x = x.to(torch.bfloat16).to(torch.float32)
    weight = torch.randn(n, k, generator=g) * 0.05
    fmt = config.format.value
    act = golden.quantize(x, fmt, block=config.block)
    w = golden.quantize(weight, fmt, block=config.block, select=golden.weight_selection(fmt))
    y = golden.quantized_matmul(act, w)
    return SimpleNamespace(activation=act, weight=w, x=x, candidate_mask=None, residual=None, salient_rows=None,
                           y=y, layer="synthetic", step=0, slot=0)  # fmt: skip


def run_tile(config: TileConfig, work, *, a_valid=None, w_valid=None, o_ready=None, reset_at=None, max_cycles=20_000):
    """Stream ``work`` through the tile; with ``reset_at`` (a cycle), pulse reset there once and restart
    both streams from their first beat. Returns (outputs, perf beats, perf window, cycles)."""
    dut = Tile(config)
    a_payloads = PayloadCodec(tile_a_layout(config)).pack(work.a_fields)
    w_payloads = PayloadCodec(tile_w_layout(config)).pack(work.w_fields)
    a_valid = a_valid or itertools.repeat(1)
    w_valid = w_valid or itertools.repeat(1)
    o_ready = o_ready or itertools.repeat(1)
    want = len(work.expected)
    state = {"epoch": 0, "outputs": [], "cycle": 0}
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = domain = ClockDomain("sync")
    dut_rst = domain.rst

    async def drive(ctx, port, payloads, pattern):
        epoch = -1
        while True:
            if epoch != state["epoch"]:
                epoch, index = state["epoch"], 0
            if index >= len(payloads) or not next(pattern):
                ctx.set(port.valid, 0)
                await ctx.tick()
                continue
            ctx.set(port.valid, 1)
            ctx.set(port.payload.as_value(), payloads[index])
            _, _, ready, rst = await ctx.tick().sample(port.ready, dut_rst)
            if ready and not rst and epoch == state["epoch"]:
                index += 1

    async def control(ctx):
        ctx.set(dut.k_blocks, work.k_blocks)
        ctx.set(dut.col_groups, work.col_groups)
        if work.tensor_scales is not None:
            ctx.set(dut.tensor_scale_a, work.tensor_scales[0])
            ctx.set(dut.tensor_scale_w, work.tensor_scales[1])
        while len(state["outputs"]) < want:
            if state["cycle"] >= max_cycles:
                raise TimeoutError(f"{len(state['outputs'])} of {want} outputs after {max_cycles} cycles")
            if reset_at is not None and state["cycle"] == reset_at:
                ctx.set(dut_rst, 1)
                state["epoch"] += 1
                state["outputs"].clear()
                await ctx.tick()
                state["cycle"] += 1
                ctx.set(dut_rst, 0)
                continue
            r = next(o_ready)
            ctx.set(dut.o.ready, r)
            _, _, v, p = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
            state["cycle"] += 1
            if v and r:
                state["outputs"].append(p)
        ctx.set(dut.o.ready, 0)
        for _ in range(12):
            _, _, v = await ctx.tick().sample(dut.o.valid)
            assert not v, "the tile produced more output beats than expected"
        state["perf"] = (ctx.get(dut.perf_mac_beats), ctx.get(dut.perf_mac_window))

    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    async def drive_a(ctx):
        await drive(ctx, dut.a, a_payloads, a_valid)

    async def drive_w(ctx):
        await drive(ctx, dut.w, w_payloads, w_valid)

    sim.add_testbench(drive_a, background=True)
    sim.add_testbench(drive_w, background=True)
    sim.add_testbench(control)
    sim.run()
    got = PayloadCodec(mac_out_layout(config.mac_config)).unpack(state["outputs"])[""].astype(np.uint32)
    return got, *state["perf"], state["cycle"]


def _random(seed: int, p: float):
    rng = np.random.default_rng(seed)
    return iter((rng.random(10**6) < p).tolist())


FORMATS = [TileFormat.MXFP4, TileFormat.FB32, pytest.param(TileFormat.DIALECTFP4, marks=pytest.mark.slow)]


@pytest.mark.parametrize("fmt", FORMATS, ids=["mxfp4", "fb32", "dialectfp4"])
def test_tile_2x2_is_bit_exact_and_keeps_the_array_busy(fmt):
    config = TileConfig(format=fmt, rows=2, cols=2, block=32, input=InputFloat.FP32, buffer_blocks=4)
    work = record_workload(config, synthetic_record(config, m=5, n=19, k=96))
    got, beats, window, _ = run_tile(config, work)
    np.testing.assert_array_equal(got, work.expected)
    assert beats == work.beats
    assert beats / window >= 0.95, f"sustained utilization {beats / window:.3f}"


@pytest.mark.parametrize("fmt", FORMATS[:2], ids=["mxfp4", "fb32"])
def test_tile_under_random_back_pressure_and_a_reset_mid_stream(fmt):
    config = TileConfig(format=fmt, rows=2, cols=2, block=32, input=InputFloat.FP32, buffer_blocks=4, quantizers=2)
    work = record_workload(config, synthetic_record(config, m=3, n=17, k=64, seed=1))
    got, *_ = run_tile(config, work, a_valid=_random(1, 0.6), w_valid=_random(2, 0.7), o_ready=_random(3, 0.5))
    np.testing.assert_array_equal(got, work.expected)
    got, *_ = run_tile(config, work, a_valid=_random(4, 0.8), w_valid=_random(5, 0.8), o_ready=_random(6, 0.6),
                       reset_at=37)  # fmt: skip
    np.testing.assert_array_equal(got, work.expected)


def test_a_k_longer_than_the_buffer_is_refused():
    config = TileConfig(format=TileFormat.MXFP4, rows=2, cols=2, buffer_blocks=2)
    with pytest.raises(CaptureMismatch, match="needs 3 blocks per row, but the tile's buffer holds 2"):
        record_workload(config, synthetic_record(config, m=2, n=2, k=96))


def test_a_slow_quantizer_behind_the_buffer_matches_the_throughput_model():
    """A DSU costing 4 of 32 dialects per cycle (a block every 8 cycles) quantizes a 2-row tile in 16
    cycles per K block; 3 column groups of L = 4 slots compute for 12: utilization 12 / 16."""
    config = TileConfig(format=TileFormat.FB32, rows=2, cols=2, input=InputFloat.FP32, buffer_blocks=4,
                        dialects_per_cycle=4)  # fmt: skip
    work = record_workload(config, synthetic_record(config, m=8, n=19, k=64, seed=2))
    got, beats, window, _ = run_tile(config, work)
    np.testing.assert_array_equal(got, work.expected)
    predicted = predicted_utilization(config, 19, work.k_blocks)
    assert predicted == 0.75
    assert abs(beats / window - predicted) < 0.06, (beats / window, predicted)


def test_the_synthesized_configuration_with_a_short_output_fifo():
    """The cost configuration (output FIFO of L + 1 beats, bfloat16 in): bit-exact, and full rate
    once k_blocks * L covers the array latency."""
    config = TileConfig(format=TileFormat.FB32, rows=2, cols=2, input=InputFloat.BF16, buffer_blocks=4,
                        output_depth=5, dsu_stages=6)  # fmt: skip
    work = record_workload(config, synthetic_record(config, m=4, n=16, k=128, seed=3))
    got, beats, window, _ = run_tile(config, work)
    np.testing.assert_array_equal(got, work.expected)
    assert beats / window >= 0.95
    got, *_ = run_tile(config, work, o_ready=_random(7, 0.3), w_valid=_random(8, 0.9))
    np.testing.assert_array_equal(got, work.expected)


@pytest.mark.parametrize("scale", [1.0, pytest.param(1e-36, marks=pytest.mark.slow), pytest.param(3e22, marks=pytest.mark.slow)],
                         ids=["normal", "tensor-scale-floor", "huge"])  # fmt: skip
def test_nvfp4_tile_with_its_scale_path_is_bit_exact(scale):
    """E4M3 block-scale product and the tensor scale T = fl32(t_a * t_w) applied to every term, in golden's
    order; tiny tensors use golden's 2^-120 tensor-scale floor (NUMERICS 3.4), huge ones overflow T to inf."""
    config = TileConfig(format=TileFormat.NVFP4, rows=2, cols=2, block=16, buffer_blocks=4)
    record = synthetic_record(config, m=5, n=10, k=48, seed=4)
    x = record.x * scale
    act = golden.quantize(x, "nvfp4", block=16)
    w = golden.quantize(torch.randn(10, 48, generator=torch.Generator().manual_seed(1)) * scale, "nvfp4", block=16)
    record = SimpleNamespace(**{**vars(record), "x": x, "activation": act, "weight": w, "y": golden.quantized_matmul(act, w)})
    work = record_workload(config, record)
    got, beats, window, _ = run_tile(config, work, o_ready=_random(9, 0.7))
    expected = work.expected
    nan = np.isnan(got.view(np.float32)) & np.isnan(expected.view(np.float32))
    bad = (got != expected) & ~nan
    assert not bad.any(), ([hex(v) for v in got[bad][:4]], [hex(v) for v in expected[bad][:4]])
