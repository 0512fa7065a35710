"""cocotb testbench for any unit configuration (run by ``sim.runner`` under Verilator or Icarus).

The configuration comes from ``SDIALECT_HW_CONFIG`` (JSON written by ``rtl_gen``), so no width is
retyped; ``SDIALECT_SIM_BEATS`` sets the size of the random sweep, ``SDIALECT_SIM_SEED`` the seed,
``SDIALECT_SIM_RESETS`` how many resets the reset test throws in, ``SDIALECT_SIM_REPORT`` where the
JSON summary goes (per test: beats, outputs, cycles, seconds; the functional coverage of
``sim.coverage``). Each test is a short story: start the clock, reset, stimulate, drain, then
compare the whole batch with the golden model (``sim.cases``). Every test logs its seed.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw import MACArrayConfig, config_from_json

from .cases import unit_case
from .cocotb_stream import StreamDriver, StreamMonitor, pattern_with_stalls, random_pattern
from .coverage import PARTIAL_SUM_BIN, Coverage, sample_batch

PERIOD_NS = 10
#: Cycles allowed per expected output beat (worst case: DSU at one dialect per cycle, back-pressure).
CYCLES_PER_BEAT = 160

#: What this process ran, written to SDIALECT_SIM_REPORT after every test.
_REPORT: dict = {"tests": {}}
_COVERAGE: dict[str, Coverage] = {}


def _setup(dut, test: str):
    config = config_from_json(os.environ["SDIALECT_HW_CONFIG"])
    seed = int(os.environ.get("SDIALECT_SIM_SEED", "1"))
    beats = int(os.environ.get("SDIALECT_SIM_BEATS", "2000"))
    dut._log.info("%s: %s with seed %d (SDIALECT_SIM_SEED=%d reproduces it) on %s", config.name, test, seed, seed,
                  os.environ.get("SDIALECT_SIM_SIMULATOR", "?"))
    if config.name not in _COVERAGE:
        _COVERAGE[config.name] = Coverage.for_config(config)
    _REPORT.update(config=config.name, seed=seed, simulator=os.environ.get("SDIALECT_SIM_SIMULATOR", ""))
    return unit_case(config), np.random.default_rng(seed), beats


def _record(case, test: str, batch, outputs: int, seconds: float, cycles: int, **extra) -> None:
    sample_batch(_COVERAGE[case.config.name], case.config, batch)
    _REPORT["tests"][test] = {
        "inputs": len(batch.payloads), "outputs": outputs, "seconds": round(seconds, 3), "cycles": cycles,
        "outputs_per_second": round(outputs / seconds, 1) if seconds > 0 else None, **extra,
    }
    _REPORT["load_average"] = [round(x, 2) for x in os.getloadavg()]  # speeds scale with the machine's load
    _REPORT["coverage"] = _COVERAGE[case.config.name].to_dict()
    path = os.environ.get("SDIALECT_SIM_REPORT")
    if path:
        with open(path, "w") as handle:
            json.dump(_REPORT, handle, indent=1)


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


def _assert_clean(case, batch, beats, seed) -> None:
    report = case.check(batch, beats)
    assert not report, f"mismatches against the golden model (seed {seed}):\n" + "\n".join(report)


async def _watch_protocol(dut, cov: Coverage) -> None:
    """Protocol bins: a stalled input, a stalled output, a gap between input beats."""
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.rst.value):
            continue
        if int(dut.i__valid.value) and not int(dut.i__ready.value):
            cov.hit("protocol/input-stalled")
        if int(dut.o__valid.value) and not int(dut.o__ready.value):
            cov.hit("protocol/output-stalled")
        if not int(dut.i__valid.value):
            cov.hit("protocol/input-gap")


def _seed(case) -> int:
    return int(os.environ.get("SDIALECT_SIM_SEED", "1"))


@cocotb.test()
async def random_stream_with_backpressure(dut):
    """The full sweep (random distributions + named corners) under random valid and ready."""
    case, rng, beats = _setup(dut, "random_stream_with_backpressure")
    batch = case.stimulus(rng, beats)
    await _start(dut)
    cocotb.start_soon(_watch_protocol(dut, _COVERAGE[case.config.name]))
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS, valid=random_pattern(rng, 0.8))
    # Random ready plus stalls long enough for the output FIFO (latency + 1 beats) to fill, so the
    # input must stall too (protocol/input-stalled) on units whose skid FIFO absorbs short random
    # stalls: the MAC array takes several input beats per output.
    beats_per_output = -(-len(batch.payloads) // max(1, batch.expected_outputs))
    stall = 2 * (case.latency + 1) * (beats_per_output + 1)
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=pattern_with_stalls(rng, 0.7, stall))
    cocotb.start_soon(monitor.run())
    started = time.perf_counter()
    await driver.send(batch.payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    seconds = time.perf_counter() - started
    categories = collections.Counter(re.sub(r"-\d+", "", name) for name in batch.names)
    dut._log.info("%s: %d beats in, %d out in %.1f s (%.0f outputs/s); categories %s", case.config.name,
                  len(batch.payloads), len(monitor.beats), seconds, len(monitor.beats) / max(seconds, 1e-9),
                  dict(sorted(categories.items())))
    _assert_clean(case, batch, monitor.beats, _seed(case))
    _record(case, "random_stream_with_backpressure", batch, len(monitor.beats), seconds, driver.cycle())
    dut._log.info("%s: all %d outputs bit-exact against golden", case.config.name, len(monitor.beats))


@cocotb.test()
async def latency_and_initiation_interval(dut):
    """At full rate the first result appears after LATENCY cycles and one follows every II cycles."""
    case, rng, _ = _setup(dut, "latency_and_initiation_interval")
    batch = case.stimulus(rng, 24)
    await _start(dut)
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS)
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS)
    cocotb.start_soon(monitor.run())
    await driver.send(batch.payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    _assert_clean(case, batch, monitor.beats, _seed(case))
    # Output j completes when the last input beat of job j is accepted (Batch.last_beats).
    latencies = {monitor.cycles[j] - driver.accepted_cycles[b] for j, b in enumerate(batch.last_beats)}
    assert latencies == {case.latency}, f"latencies {sorted(latencies)}, documented {case.latency}"
    gaps = set(np.diff(driver.accepted_cycles).tolist())
    assert gaps == {case.initiation_interval}, f"input gaps {sorted(gaps)}, documented II {case.initiation_interval}"


@cocotb.test()
async def resets_at_random_points(dut):
    """Many resets per run at random cycles, half of them timed to hit work in flight (for the MAC
    array: a job whose first K blocks have reached the accumulators but whose ``last`` beat has not
    been sent). After each reset the producer resends every job whose output had not come out; the
    whole stream must come out exactly once, bit-exact. The test fails if no reset hit work in
    flight (and, for the MAC array, a partial sum), so it cannot pass vacuously."""
    case, rng, _ = _setup(dut, "resets_at_random_points")
    cov = _COVERAGE[case.config.name]
    resets = int(os.environ.get("SDIALECT_SIM_RESETS", "12"))
    mac = isinstance(case.config, MACArrayConfig)
    batch = case.stimulus(rng, 40 * resets if not mac else 12 * resets)
    await _start(dut)
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS, valid=random_pattern(rng, 0.9))
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=random_pattern(rng, 0.6))
    cocotb.start_soon(monitor.run())
    started = time.perf_counter()
    done = 0  # outputs delivered so far = the first output still owed
    states: collections.Counter = collections.Counter()
    for event in range(resets):
        rest = batch.take(done)
        base = len(driver.accepted_cycles)
        sending = cocotb.start_soon(driver.send(rest.payloads))
        aimed = event % 2 == 0
        for _ in range(int(rng.integers(3, 60))):
            await RisingEdge(dut.clk)
        # Aimed resets wait (a bounded while) for a beat to be deep in flight: for the MAC array a
        # job with K blocks in the accumulators and its last beat still to come.
        for _ in range(400 if aimed else 0):
            if _in_flight(case, rest, driver, monitor, base, done, deep=True)[1 if mac else 0]:
                break
            await RisingEdge(dut.clk)
        await ReadOnly()
        in_flight, partial = _in_flight(case, rest, driver, monitor, base, done, deep=True)
        held = bool(int(dut.o__valid.value))
        await RisingEdge(dut.clk)
        sending.cancel()
        driver.idle()
        dut.rst.value = 1
        await ClockCycles(dut.clk, int(rng.integers(1, 4)))
        dut.rst.value = 0
        states.update(idle=not in_flight, in_flight=in_flight, partial_sum=partial, output_held=held)
        cov.hit("reset/idle", int(not in_flight and not held))
        cov.hit("reset/in-flight", int(in_flight))
        cov.hit("reset/output-held", int(held))
        if mac:
            cov.hit(PARTIAL_SUM_BIN, int(partial))
        # A C-slow MAC array computes L interleaved jobs as one group: a group cut by the reset is
        # resent whole, so its outputs that came out before the reset are dropped here.
        done = batch.group_start(len(monitor.beats))
        del monitor.beats[done:], monitor.cycles[done:]
        if done >= batch.expected_outputs:
            break
        await ClockCycles(dut.clk, int(rng.integers(0, 3)))
    if done < batch.expected_outputs:
        await driver.send(batch.take(done).payloads)
    await _drain(monitor, batch.expected_outputs, CYCLES_PER_BEAT * batch.expected_outputs, dut.clk)
    # One more reset with the unit idle: nothing may come out of it.
    delivered = len(monitor.beats)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 16)
    assert len(monitor.beats) == delivered, "a reset of the idle unit produced output beats"
    cov.hit("reset/idle")
    states.update(idle=1)
    seconds = time.perf_counter() - started
    dut._log.info("%s: %d resets (seed %d): %s", case.config.name, sum(states[k] for k in ("idle", "in_flight")),
                  _seed(case), dict(states))
    _assert_clean(case, batch, monitor.beats, _seed(case))
    assert states["in_flight"] > 0, f"no reset hit a beat in flight (seed {_seed(case)}): {dict(states)}"
    if mac:
        assert states["partial_sum"] > 0, f"no reset hit a partial sum in flight (seed {_seed(case)}): {dict(states)}"
    _record(case, "resets_at_random_points", batch, len(monitor.beats), seconds, driver.cycle(),
            resets=dict(states))


def _in_flight(case, rest, driver, monitor, base, done, *, deep):
    """(a beat accepted since the last reset has not come out, the MAC accumulators hold part of a job).

    ``rest`` is what the current send carries (outputs ``done...``); ``base`` the driver's accepted
    count when the send began. A partial sum is in flight when the oldest owed job has had some but
    not all of its K blocks accepted, the first at least ``latency`` cycles ago (so it has reached
    the accumulators).
    """
    accepted = len(driver.accepted_cycles) - base
    delivered = len(monitor.beats) - done
    if accepted == 0:
        return False, False
    # Outputs whose inputs were all accepted: jobs j with last_beats[j] < accepted (outputs complete
    # in order, also on the C-slow array, whose group of L jobs completes slot by slot).
    firsts = rest.first_beats + [len(rest.payloads)]
    complete = sum(1 for b in rest.last_beats if b < accepted)
    in_flight = complete > delivered or accepted > firsts[complete]
    partial = False
    if complete < len(rest.first_beats) and accepted > firsts[complete]:
        first_cycle = driver.accepted_cycles[base + firsts[complete]]
        # Issue 10: the C-slow MAC array is 7 + L cycles deep, longer than a short job takes to stream
        # in; its pipeline registers hold the partial sum from the cycle after a block is accepted.
        partial = driver.cycle() - first_cycle >= min(case.latency, 2)
    return in_flight, partial
