"""cocotb 2.x valid/ready stream driver and monitor for Amaranth-generated ports.

Amaranth flattens a stream interface ``i`` into the Verilog ports ``i__valid``, ``i__ready`` and
``i__payload`` (one packed vector); the payload integers come from ``sim.payload.PayloadCodec``.
Signals read right after ``RisingEdge`` hold their value from before the edge, i.e. exactly what
the handshake at that edge saw. Back-pressure and gaps are iterators of 0/1 you plug in
(``itertools.cycle([1, 1, 0])``). Beats are only counted while reset is low.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["StreamDriver", "StreamMonitor", "pattern_with_stalls", "random_pattern"]


def random_pattern(rng, probability: float) -> Iterator[int]:
    """An endless 0/1 iterator that is 1 with ``probability`` (``rng``: numpy Generator)."""
    while True:
        for bit in rng.random(4096) < probability:
            yield int(bit)


def pattern_with_stalls(rng, probability: float, max_stall: int, every: int = 400) -> Iterator[int]:
    """``random_pattern(rng, probability)`` with runs of zeros: one of ``max_stall`` after the first
    ``max_stall`` cycles, then on average once per ``every`` cycles one of 1 to ``max_stall``. A consumer
    that stops long enough to fill a unit's output FIFO, so that its credit-based input ready must
    fall (the skid FIFOs of issue 10 absorb short random stalls)."""
    head = random_pattern(rng, probability)
    for _ in range(max_stall):
        yield next(head)
    yield from itertools.repeat(0, max_stall)
    while True:
        draws = rng.random(4096)
        stalls = rng.random(4096) < 1 / every
        lengths = rng.integers(1, max_stall + 1, 4096)
        for bit, stall, length in zip(draws < probability, stalls, lengths):
            if stall:
                yield from itertools.repeat(0, int(length))
            yield int(bit)


class _Port:
    def __init__(self, dut, name: str, clock, period_ns: float) -> None:
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clock = clock
        self.reset = dut.rst
        self.period_ns = period_ns

    def cycle(self) -> int:
        return round(get_sim_time("ns") / self.period_ns)


class StreamDriver(_Port):
    """Drives ``<name>__valid``/``__payload``; records the cycle of every accepted beat."""

    def __init__(self, dut, name: str, clock, period_ns: float, valid: Iterator[int] | None = None) -> None:
        super().__init__(dut, name, clock, period_ns)
        self.pattern = itertools.repeat(1) if valid is None else valid
        self.accepted_cycles: list[int] = []
        self.valid.value = 0

    async def send(self, payloads: list[int]) -> None:
        for payload in payloads:
            while not next(self.pattern):
                self.valid.value = 0
                await RisingEdge(self.clock)
            self.valid.value = 1
            self.payload.value = payload
            while True:
                await RisingEdge(self.clock)
                if int(self.ready.value) and not int(self.reset.value):
                    self.accepted_cycles.append(self.cycle() - 1)
                    break
        self.valid.value = 0

    def idle(self) -> None:
        self.valid.value = 0


class StreamMonitor(_Port):
    """Drives ``<name>__ready`` from a pattern and collects every beat handed over."""

    def __init__(self, dut, name: str, clock, period_ns: float, ready: Iterator[int] | None = None) -> None:
        super().__init__(dut, name, clock, period_ns)
        self.pattern = itertools.repeat(1) if ready is None else ready
        self.beats: list[int] = []
        self.cycles: list[int] = []
        self.ready.value = 0

    async def run(self) -> None:
        while True:
            ready = next(self.pattern)
            self.ready.value = ready
            await RisingEdge(self.clock)
            if ready and int(self.valid.value) and not int(self.reset.value):
                self.beats.append(int(self.payload.value))
                self.cycles.append(self.cycle() - 1)
