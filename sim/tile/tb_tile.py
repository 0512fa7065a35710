"""cocotb regression of the tile on captured activations (run by ``sim.tile.runner`` under Verilator).

Environment (written by the runner): ``SDIALECT_HW_CONFIG`` (the tile configuration JSON, so no
width is retyped), ``SDIALECT_TILE_WORKLOADS`` (the beats and golden expectations of every captured
record, ``sim.tile.workload.save_workloads``), ``SDIALECT_TILE_CAPTURE`` (the capture it came from),
``SDIALECT_TILE_REPORT`` (where the JSON summary goes), ``SDIALECT_TILE_MIN_UTILIZATION``.

Two tests. ``captured_layers_replay_bit_exact``, per record: reset, set ``k_blocks`` and
``col_groups``, stream every activation and weight beat at full rate (no back-pressure on the
output), drain, compare every binary32 output with ``golden`` bit for bit, check the decomposition
merge against the captured layer output, read the performance counters (utilization >= the
minimum). ``captured_layers_under_back_pressure_and_reset``, per record: random valid on ``a`` and
``w`` and random ready on ``o``, a reset in the middle of the stream, then the whole record again
under random back-pressure: bit-exact.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hw.layouts import mac_out_layout
from hw.tile import Tile, TileConfig, tile_a_layout, tile_w_layout
from sim.cocotb_stream import StreamDriver, StreamMonitor, random_pattern
from sim.payload import PayloadCodec

from .workload import load_workloads

PERIOD_NS = 10
#: Mismatching output words listed before the rest are counted.
REPORTED = 8


async def _reset(dut) -> None:
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


def _mismatches(expected: np.ndarray, got: np.ndarray, what: str) -> list[str]:
    bad = np.argwhere(expected != got)
    lines = [
        f"{what} {tuple(int(i) for i in idx)}: expected {int(expected[tuple(idx)]):#010x} got {int(got[tuple(idx)]):#010x}"
        for idx in bad[:REPORTED]
    ]
    if len(bad) > REPORTED:
        lines.append(f"... {len(bad) - REPORTED} more mismatching words in {what}")
    return lines


async def _stream(dut, work, a_payloads, w_payloads, latency, patterns=None, stop_after=None):
    """Stream one record; returns the output monitor. ``patterns``: (a valid, w valid, o ready) iterators;
    ``stop_after``: give up after that many cycles (the caller then resets mid-stream)."""
    a_valid, w_valid, o_ready = patterns or (None, None, None)
    dut.k_blocks.value = work.k_blocks
    dut.col_groups.value = work.col_groups
    if work.tensor_scales is not None:  # E4M3 scale path (NVFP4, E4M3 dialect formats): t_a, t_w
        dut.tensor_scale_a.value, dut.tensor_scale_w.value = work.tensor_scales
    a_driver = StreamDriver(dut, "a", dut.clk, PERIOD_NS, valid=a_valid)
    w_driver = StreamDriver(dut, "w", dut.clk, PERIOD_NS, valid=w_valid)
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=o_ready)
    watching = cocotb.start_soon(monitor.run())
    sending = [cocotb.start_soon(w_driver.send(w_payloads)), cocotb.start_soon(a_driver.send(a_payloads))]
    if stop_after is not None:
        await ClockCycles(dut.clk, stop_after)
        for task in [*sending, watching]:
            task.cancel()
        a_driver.idle()
        w_driver.idle()
        return monitor
    for task in sending:
        await task
    limit = 8 * (latency + 4 * work.k_blocks + 64) if patterns else latency + 4 * work.k_blocks + 64
    for _ in range(limit):
        if len(monitor.beats) >= len(work.expected):
            break
        await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, 8)  # nothing more may come out
    watching.cancel()
    return monitor


@cocotb.test()
async def captured_layers_under_back_pressure_and_reset(dut):
    """Random valid/ready on every stream, a reset mid-stream, then the full record again: bit-exact."""
    config = TileConfig.from_json(os.environ["SDIALECT_HW_CONFIG"])
    workloads = load_workloads(os.environ["SDIALECT_TILE_WORKLOADS"])
    a_codec, w_codec = PayloadCodec(tile_a_layout(config)), PayloadCodec(tile_w_layout(config))
    o_codec = PayloadCodec(mac_out_layout(config.mac_config))
    latency = Tile.timing(config).latency
    rng = np.random.default_rng(11)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    failures = []
    for work in workloads:
        a_payloads, w_payloads = a_codec.pack(work.a_fields), w_codec.pack(work.w_fields)
        patterns = (random_pattern(rng, 0.7), random_pattern(rng, 0.7), random_pattern(rng, 0.5))
        await _reset(dut)
        await _stream(dut, work, a_payloads, w_payloads, latency, patterns, stop_after=int(rng.integers(10, 10 + work.beats)))
        await _reset(dut)  # mid-stream: whatever was in flight is dropped
        monitor = await _stream(dut, work, a_payloads, w_payloads, latency, patterns)
        if len(monitor.beats) != len(work.expected):
            failures.append(f"{work.name}: expected {len(work.expected)} output beats, got {len(monitor.beats)}")
            continue
        got = o_codec.unpack(monitor.beats)[""].astype(np.uint32)
        failures += [f"{work.name}: {line}" for line in _mismatches(work.expected, got, "tile output (back-pressure)")]
    assert not failures, "tile regression under back-pressure failed:\n" + "\n".join(failures[:40])


@cocotb.test()
async def captured_layers_replay_bit_exact(dut):
    """Every captured record through the tile: bit-exact outputs, merge equals the captured y, utilization."""
    config = TileConfig.from_json(os.environ["SDIALECT_HW_CONFIG"])
    workloads = load_workloads(os.environ["SDIALECT_TILE_WORKLOADS"])
    min_utilization = float(os.environ.get("SDIALECT_TILE_MIN_UTILIZATION", "0.95"))
    a_codec, w_codec = PayloadCodec(tile_a_layout(config)), PayloadCodec(tile_w_layout(config))
    o_codec = PayloadCodec(mac_out_layout(config.mac_config))
    latency = Tile.timing(config).latency

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    failures, records = [], []
    for work in workloads:
        a_payloads, w_payloads = a_codec.pack(work.a_fields), w_codec.pack(work.w_fields)
        await _reset(dut)
        started = time.perf_counter()
        monitor = await _stream(dut, work, a_payloads, w_payloads, latency)
        wall = time.perf_counter() - started
        outputs = len(work.expected)
        beats, window = int(dut.perf_mac_beats.value), int(dut.perf_mac_window.value)

        if len(monitor.beats) != outputs:
            failures.append(f"{work.name}: expected {outputs} output beats, got {len(monitor.beats)}")
            continue
        got = o_codec.unpack(monitor.beats)[""].astype(np.uint32)
        failures += [f"{work.name}: {line}" for line in _mismatches(work.expected, got, "tile output")]
        failures += [f"{work.name}: {line}" for line in _mismatches(work.captured_y, work.merged(got), "merged y")]
        utilization = beats / window if window else 0.0
        if beats != work.beats:
            failures.append(f"{work.name}: the MAC array took {beats} beats, expected {work.beats}")
        if utilization < min_utilization:
            failures.append(f"{work.name}: sustained PE utilization {utilization:.4f} < {min_utilization}")
        blocks = work.activation_blocks
        records.append(
            {
                "record": work.name,
                "layer": work.layer,
                "step": work.step,
                "slot": work.slot,
                "rows": work.main_rows,
                "salient_rows": int(len(work.salient_rows)),
                "out_features": work.out_features,
                "k_blocks": work.k_blocks,
                "col_groups": work.col_groups,
                "mac_beats": beats,
                "mac_window_cycles": window,
                "pe_utilization": utilization,
                "activation_blocks": blocks,
                "wall_s": wall,
                "blocks_per_s": blocks / wall,
                "outputs_bit_exact": not any(f.startswith(work.name) for f in failures),
            }
        )
        dut._log.info(
            "%s: %d beats, utilization %.4f, %.0f activation blocks/s", work.name, beats, utilization, blocks / wall
        )

    total_blocks = sum(r["activation_blocks"] for r in records)
    total_wall = sum(r["wall_s"] for r in records)
    summary = {
        "config": json.loads(config.to_json()),
        "capture": os.environ["SDIALECT_TILE_CAPTURE"],
        "latency_cycles": latency,
        "records": records,
        "activation_blocks": total_blocks,
        "blocks_per_s": total_blocks / total_wall if total_wall else 0.0,
        "min_pe_utilization": min((r["pe_utilization"] for r in records), default=0.0),
        "failures": failures,
    }
    report = Path(os.environ["SDIALECT_TILE_REPORT"])
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    assert records, "the capture holds no records"
    assert not failures, "tile regression failed:\n" + "\n".join(failures[:40])
