"""Small building blocks shared by the units: ROMs, a registered stream stage, reduction trees."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib.memory import Memory

__all__ = ["Rom", "UnitTiming", "register_stage", "tree_reduce"]


@dataclass(frozen=True)
class UnitTiming:
    """Cycles from an input handshake (the last beat of a job) to its output beat being valid, without
    back-pressure, and cycles between accepted input beats at full rate."""

    latency: int
    initiation_interval: int


class Rom:
    """A read-only table of constants as one Amaranth ``Memory`` with a combinational read port per use.

    Sharing one memory among all lanes that read the same table keeps the Verilog small (one array
    and one ``assign`` per lane instead of a case statement per lane).
    """

    def __init__(self, m: Module, name: str, values: Sequence[int], width: int) -> None:
        values = [int(v) for v in values]
        if any(v < 0 or v >= 1 << width for v in values):
            raise ValueError(f"ROM {name!r} holds a value that does not fit {width} bits")
        self.memory = Memory(shape=unsigned(width), depth=len(values), init=values)
        self.width = width
        m.submodules[name] = self.memory

    def read(self, m: Module, index: Value, name: str) -> Signal:
        """A combinational read of entry ``index``, as a signal named ``name``."""
        port = self.memory.read_port(domain="comb")
        data = Signal(self.width, name=name)
        m.d.comb += [port.addr.eq(index), data.eq(port.data)]
        return data


def register_stage(m: Module, i, o, payload: Value) -> None:
    """One registered stream stage: ``o`` takes ``payload`` (computed from ``i.payload``) on a handshake.

    Latency 1 cycle, initiation interval 1; ``i.ready`` is high whenever the output register is
    empty or being emptied, so back-pressure propagates without a bubble.
    """
    m.d.comb += i.ready.eq(~o.valid | o.ready)
    with m.If(i.ready):
        m.d.sync += o.valid.eq(i.valid)
        with m.If(i.valid):
            m.d.sync += o.payload.eq(payload)


def tree_reduce(items: Sequence, combine: Callable) -> object:
    """Reduce ``items`` pairwise in a balanced tree, keeping their order (left operand first)."""
    items = list(items)
    while len(items) > 1:
        paired = [combine(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]
