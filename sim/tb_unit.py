"""cocotb testbench for any unit configuration (run by ``sim.runner`` under Verilator).

The configuration comes from ``SDIALECT_HW_CONFIG`` (JSON written by ``rtl_gen``), so no width is
retyped; ``SDIALECT_SIM_BEATS`` sets the size of the random sweep, ``SDIALECT_SIM_SEED`` the seed.
Each test is a short story: start the clock, reset, stimulate, drain, then compare the whole batch
with the golden model (``sim.cases``).
"""

from __future__ import annotations

import collections
import os
import re

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hw import config_from_json

from .cases import unit_case
from .cocotb_stream import StreamDriver, StreamMonitor, random_pattern

PERIOD_NS = 10
#: Cycles allowed per expected output beat (worst case: DSU at one dialect per cycle, back-pressure).
CYCLES_PER_BEAT = 160


def _setup(dut):
    config = config_from_json(os.environ["SDIALECT_HW_CONFIG"])
    seed = int(os.environ.get("SDIALECT_SIM_SEED", "1"))
    beats = int(os.environ.get("SDIALECT_SIM_BEATS", "2000"))
    return unit_case(config), np.random.default_rng(seed), beats


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def _drain(monitor: StreamMonitor, count: int, limit: int, clock) -> None:
    for _ in range(limit):
        if len(monitor.beats) >= count:
            break
        await RisingEdge(clock)
    await ClockCycles(clock, 16)  # nothing more may come out


def _assert_clean(case, batch, beats) -> None:
    report = case.check(batch, beats)
    assert not report, "mismatches against the golden model:\n" + "\n".join(report)


@cocotb.test()
async def random_stream_with_backpressure(dut):
    """The full sweep (random distributions + named corners) under random valid and ready."""
    case, rng, beats = _setup(dut)
    batch = case.stimulus(rng, beats)
    await _start(dut)
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS, valid=random_pattern(rng, 0.8))
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=random_pattern(rng, 0.7))
    cocotb.start_soon(monitor.run())
    await driver.send(batch.payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    categories = collections.Counter(re.sub(r"-\d+", "", name) for name in batch.names)
    dut._log.info("%s: %d beats in, %d out; categories %s", case.config.name, len(batch.payloads),
                  len(monitor.beats), dict(sorted(categories.items())))
    _assert_clean(case, batch, monitor.beats)
    dut._log.info("%s: all %d outputs bit-exact against golden", case.config.name, len(monitor.beats))


@cocotb.test()
async def latency_and_initiation_interval(dut):
    """At full rate the first result appears after LATENCY cycles and one follows every II cycles."""
    case, rng, _ = _setup(dut)
    batch = case.stimulus(rng, 24)
    await _start(dut)
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS)
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS)
    cocotb.start_soon(monitor.run())
    await driver.send(batch.payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    _assert_clean(case, batch, monitor.beats)
    # Output j completes when the last input beat of job j is accepted (beat before first_beats[j+1]).
    last_beats = [b - 1 for b in batch.first_beats[1:]] + [len(batch.payloads) - 1]
    latencies = {monitor.cycles[j] - driver.accepted_cycles[b] for j, b in enumerate(last_beats)}
    assert latencies == {case.latency}, f"latencies {sorted(latencies)}, documented {case.latency}"
    gaps = set(np.diff(driver.accepted_cycles).tolist())
    assert gaps == {case.initiation_interval}, f"input gaps {sorted(gaps)}, documented II {case.initiation_interval}"


@cocotb.test()
async def reset_in_the_middle_of_a_stream(dut):
    """A reset mid-stream flushes the pipeline; resending what did not come out loses and duplicates nothing."""
    case, rng, _ = _setup(dut)
    batch = case.stimulus(rng, 200)
    await _start(dut)
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS, valid=random_pattern(rng, 0.9))
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=random_pattern(rng, 0.6))
    cocotb.start_soon(monitor.run())
    sending = cocotb.start_soon(driver.send(batch.payloads))
    await ClockCycles(dut.clk, int(rng.integers(40, 120)))
    sending.cancel()
    driver.idle()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    done = len(monitor.beats)
    assert 0 < done < batch.expected_outputs, f"reset should land mid-stream, {done} beats were out"
    rest = batch.take(done)
    await driver.send(rest.payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    _assert_clean(case, batch, monitor.beats)
