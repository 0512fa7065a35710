"""Stream testbenches for Amaranth's Python simulator (async API), shared by the ``test_hw_*`` tests.

``run_stream(dut, payloads)`` pushes payload integers into ``dut.i`` and collects ``dut.o`` beats,
with pluggable valid/ready patterns (iterators of 0/1, e.g. ``itertools.cycle([1, 1, 0])``), and
records the cycle of every handshake so tests can assert latency and initiation interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass
class StreamRun:
    outputs: list[int] = field(default_factory=list)
    in_cycles: list[int] = field(default_factory=list)  # cycle of each input handshake
    out_cycles: list[int] = field(default_factory=list)  # cycle of each output handshake


def run_stream(
    dut,
    payloads: list[int],
    *,
    valid: Iterator[int] | None = None,
    ready: Iterator[int] | None = None,
    expected_outputs: int | None = None,
    max_cycles: int = 100_000,
    vcd: str | None = None,
) -> StreamRun:
    """Simulate ``dut`` until ``expected_outputs`` beats (default ``len(payloads)``) came out."""
    valid = itertools.repeat(1) if valid is None else valid
    ready = itertools.repeat(1) if ready is None else ready
    want = len(payloads) if expected_outputs is None else expected_outputs
    run = StreamRun()
    i_payload, o_payload = dut.i.payload.as_value(), dut.o.payload.as_value()

    async def driver(ctx):
        cycle = 0
        for p in payloads:
            while not next(valid):
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i.valid, 1)
            ctx.set(i_payload, p)
            while True:
                _, _, accepted = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if accepted:
                    run.in_cycles.append(cycle - 1)
                    break
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        cycle = 0
        while len(run.outputs) < want:
            if cycle >= max_cycles:
                raise TimeoutError(f"only {len(run.outputs)} of {want} outputs after {max_cycles} cycles")
            r = next(ready)
            ctx.set(dut.o.ready, r)
            _, _, v, p = await ctx.tick().sample(dut.o.valid, o_payload)
            cycle += 1
            if v and r:
                run.outputs.append(p)
                run.out_cycles.append(cycle - 1)
        ctx.set(dut.o.ready, 0)
        # A few more cycles must produce nothing: no duplicated or stray beats.
        for _ in range(8):
            _, _, v = await ctx.tick().sample(dut.o.valid)
            if v:
                raise AssertionError("the unit produced more output beats than expected")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return run
