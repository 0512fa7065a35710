"""cocotb regression of the tile on captured activations (run by ``sim.tile.runner`` under Verilator).

Environment (written by the runner): ``SDIALECT_HW_CONFIG`` (the tile configuration JSON, so no
width is retyped), ``SDIALECT_TILE_WORKLOADS`` (the beats and golden expectations of every captured
record, ``sim.tile.workload.save_workloads``), ``SDIALECT_TILE_CAPTURE`` (the capture it came from),
``SDIALECT_TILE_REPORT`` (where the JSON summary goes), ``SDIALECT_TILE_MIN_UTILIZATION``.

Two tests. ``captured_layers_replay_bit_exact``, per record: reset, set ``k_blocks`` and
``col_groups``, stream every activation and weight beat at full rate (no back-pressure on the
output), drain, compare every binary32 output with ``golden`` bit for bit, check the decomposition
merge against the captured layer output, read the performance counters (utilization >= the
minimum), and assert the documented latency (``Tile.timing``: the ``w`` handshake of a slot's last
K block to its ``o`` beat) on every output beat. ``captured_layers_under_back_pressure_and_reset``,
per record: random valid on ``a`` and ``w`` and random ready on ``o``; a reset in the middle of the
stream at a random point after a random number of ``w`` beats, which must hit a partial sum in flight
(an accepted ``w`` beat whose output had not come out); then the whole record again under random
back-pressure: exactly the expected beats, bit-exact, none earlier than the documented latency.
The random patterns come from ``SDIALECT_TILE_SEED`` (default 11), logged and in every failure.
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


def output_of_beat(work, slots: int, beat: np.ndarray) -> np.ndarray:
    """Output beat index of each ``w`` beat: per row tile and column group the ``w`` order is K block
    ``k``, slot ``l`` (``slots`` = L, ``hw.tile``), and output ``t`` of a column group is slot ``t mod L``."""
    group = beat // (work.k_blocks * slots)
    return group * slots + beat % slots


def output_latencies(work, slots: int, w_cycles: list[int], o_cycles: list[int]) -> np.ndarray:
    """Cycles from the ``w`` handshake of each output's last K block to its ``o`` beat."""
    t = np.arange(len(o_cycles))
    last_beat = (t // slots) * work.k_blocks * slots + (work.k_blocks - 1) * slots + t % slots
    return np.asarray(o_cycles) - np.asarray(w_cycles)[last_beat]


async def _stream(dut, work, a_payloads, w_payloads, latency, patterns=None, stop_after=None):
    """Stream one record; returns (output monitor, ``w`` driver). ``patterns``: (a valid, w valid, o ready)
    iterators; ``stop_after``: ``(w beats, cycles)``: give up that many cycles after that many ``w`` beats
    were accepted (the caller then resets mid-stream)."""
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
        w_beats, cycles = stop_after
        while len(w_driver.accepted_cycles) < w_beats:
            await RisingEdge(dut.clk)
        await ClockCycles(dut.clk, cycles)
        for task in [*sending, watching]:
            task.cancel()
        a_driver.idle()
        w_driver.idle()
        return monitor, w_driver
    for task in sending:
        await task
    limit = 8 * (latency + 4 * work.k_blocks + 64) if patterns else latency + 4 * work.k_blocks + 64
    for _ in range(limit):
        if len(monitor.beats) >= len(work.expected):
            break
        await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, 8)  # nothing more may come out
    watching.cancel()
    return monitor, w_driver


@cocotb.test()
async def captured_layers_under_back_pressure_and_reset(dut):
    """Random valid/ready on every stream, a reset hitting a partial sum in flight, then the full record
    again: exactly the expected beats, bit-exact, none earlier than the documented latency."""
    config = TileConfig.from_json(os.environ["SDIALECT_HW_CONFIG"])
    workloads = load_workloads(os.environ["SDIALECT_TILE_WORKLOADS"])
    a_codec, w_codec = PayloadCodec(tile_a_layout(config)), PayloadCodec(tile_w_layout(config))
    o_codec = PayloadCodec(mac_out_layout(config.mac_config))
    latency = Tile.timing(config).latency
    seed = int(os.environ.get("SDIALECT_TILE_SEED", "11"))
    dut._log.info("back-pressure and reset patterns: SDIALECT_TILE_SEED=%d", seed)
    rng = np.random.default_rng(seed)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    failures = []
    for work in workloads:
        a_payloads, w_payloads = a_codec.pack(work.a_fields), w_codec.pack(work.w_fields)
        patterns = (random_pattern(rng, 0.7), random_pattern(rng, 0.7), random_pattern(rng, 0.5))
        await _reset(dut)
        stop = (int(rng.integers(1, max(2, work.beats))), int(rng.integers(0, latency + 1)))
        monitor, w_driver = await _stream(dut, work, a_payloads, w_payloads, latency, patterns, stop_after=stop)
        accepted, out_before = len(w_driver.accepted_cycles), len(monitor.beats)
        in_flight = int(output_of_beat(work, config.interleave, np.arange(accepted)).max()) >= out_before
        await _reset(dut)  # mid-stream: whatever was in flight is dropped
        if not in_flight:
            failures.append(f"{work.name}: the reset after {accepted} w beats found no partial sum in flight "
                            f"({out_before} outputs out); seed {seed}")  # fmt: skip
        monitor, w_driver = await _stream(dut, work, a_payloads, w_payloads, latency, patterns)
        if len(monitor.beats) != len(work.expected):
            failures.append(f"{work.name}: expected {len(work.expected)} output beats, got {len(monitor.beats)}; seed {seed}")
            continue
        got = o_codec.unpack(monitor.beats)[""].astype(np.uint32)
        failures += [f"{work.name}: {line}; seed {seed}" for line in _mismatches(work.expected, got, "tile output (back-pressure)")]
        early = output_latencies(work, config.interleave, w_driver.accepted_cycles, monitor.cycles).min()
        if early < latency:
            failures.append(f"{work.name}: an output came {early} cycles after its last w beat, before the latency {latency}; seed {seed}")
        dut._log.info("%s: reset after %d of %d w beats (%d outputs out), then bit-exact", work.name, accepted,
                      work.beats, out_before)  # fmt: skip
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
        monitor, w_driver = await _stream(dut, work, a_payloads, w_payloads, latency)
        wall = time.perf_counter() - started
        outputs = len(work.expected)
        beats, window = int(dut.perf_mac_beats.value), int(dut.perf_mac_window.value)

        if len(monitor.beats) != outputs:
            failures.append(f"{work.name}: expected {outputs} output beats, got {len(monitor.beats)}")
            continue
        got = o_codec.unpack(monitor.beats)[""].astype(np.uint32)
        failures += [f"{work.name}: {line}" for line in _mismatches(work.expected, got, "tile output")]
        failures += [f"{work.name}: {line}" for line in _mismatches(work.captured_y, work.merged(got), "merged y")]
        latencies = output_latencies(work, config.interleave, w_driver.accepted_cycles, monitor.cycles)
        if not (latencies == latency).all():
            failures.append(f"{work.name}: output latencies {sorted(set(latencies.tolist()))} at full rate, documented {latency}")
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
                "latency_cycles": sorted(set(latencies.tolist())),
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
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "failures": failures,
    }
    report = Path(os.environ["SDIALECT_TILE_REPORT"])
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    assert records, "the capture holds no records"
    assert not failures, "tile regression failed:\n" + "\n".join(failures[:40])
