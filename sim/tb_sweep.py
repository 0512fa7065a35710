"""cocotb batch sweep of a selector (``sim.runner.run_cocotb(..., test_module="sim.tb_sweep")``).

Streams ``SDIALECT_SIM_BEATS`` blocks (the named corners first, then random blocks from every
distribution and mask mode of ``sim.stimulus``) through the unit in chunks: each chunk is
generated, sent at full rate with light back-pressure, collected and checked against golden as one
batch, so memory stays flat however many blocks run. Writes the totals, the mismatches and the
speed (blocks per second of simulation, wall clock, including stimulus and checking) to
``SDIALECT_SIM_REPORT``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hw import config_from_json

from .cases import unit_case
from .cocotb_stream import StreamDriver, StreamMonitor, random_pattern
from .coverage import Coverage, sample_batch

PERIOD_NS = 10
#: Blocks generated, simulated and checked at a time.
CHUNK = 50_000


@cocotb.test()
async def million_block_sweep(dut):
    """Every block bit-exact against golden, chunk by chunk; the count of mismatches must be zero."""
    config = config_from_json(os.environ["SDIALECT_HW_CONFIG"])
    seed = int(os.environ.get("SDIALECT_SIM_SEED", "1"))
    total = int(os.environ.get("SDIALECT_SIM_BEATS", "1000000"))
    dut._log.info("%s: %d-block sweep with seed %d", config.name, total, seed)
    case = unit_case(config)
    rng = np.random.default_rng(seed)
    cov = Coverage.for_config(config)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    driver = StreamDriver(dut, "i", dut.clk, PERIOD_NS, valid=random_pattern(rng, 0.97))
    monitor = StreamMonitor(dut, "o", dut.clk, PERIOD_NS, ready=random_pattern(rng, 0.97))
    cocotb.start_soon(monitor.run())
    started = time.perf_counter()
    done, mismatching, report = 0, 0, []
    while done < total:
        n = min(CHUNK, total - done)
        batch = case.stimulus(rng, n) if done == 0 else _random_only(case, rng, n)
        first = len(monitor.beats)
        await driver.send(batch.payloads)
        while len(monitor.beats) - first < batch.expected_outputs:
            await RisingEdge(dut.clk)
        outputs = monitor.beats[first:]
        problems = case.check(batch, outputs)
        if problems:
            mismatching += 1
            report += [f"chunk at block {done}: {p}" for p in problems[:5]]
        sample_batch(cov, config, batch)
        done += batch.expected_outputs
        del monitor.beats[:], monitor.cycles[:]
        dut._log.info("%s: %d / %d blocks, %.0f blocks/s", config.name, done, total,
                      done / (time.perf_counter() - started))
    await ClockCycles(dut.clk, 16)
    seconds = time.perf_counter() - started
    summary = {"config": config.name, "seed": seed, "blocks": done, "mismatching_chunks": mismatching,
               "mismatches": report, "seconds": round(seconds, 1), "blocks_per_second": round(done / seconds, 1),
               "cycles": driver.cycle(), "simulator": os.environ.get("SDIALECT_SIM_SIMULATOR", ""),
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "coverage": cov.to_dict()}
    path = os.environ.get("SDIALECT_SIM_REPORT")
    if path:
        with open(path, "w") as handle:
            json.dump(summary, handle, indent=1)
    dut._log.info("%s: %d blocks in %.1f s (%.0f blocks/s), %d mismatching chunks", config.name, done, seconds,
                  done / seconds, mismatching)
    assert not monitor.beats, f"{len(monitor.beats)} extra output beats after the sweep"
    assert not report, "mismatches against golden (seed %d):\n%s" % (seed, "\n".join(report))


def _random_only(case, rng, n):
    """A chunk of random blocks without repeating the named corners."""
    from . import stimulus

    fields, names = stimulus.selector_blocks(rng, case.config, n)
    return case._batch(fields, names)
