"""Small building blocks shared by the units: ROMs, a registered stream stage, reduction trees."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib.memory import Memory

__all__ = ["ENABLE_FANOUT", "Rom", "UnitTiming", "enable_chunks", "register_stage", "tree_reduce"]

#: Most storage flip-flops one clock-enable net drives (issue 10, Fmax). On ECP5 a wide register whose
#: enable is one LUT spreads its flip-flops towards their readers, and that one net then needs 10-17 ns
#: of routing (the 2 x 2 tiles' worst paths). A register wider than this is cut into chunks, each with
#: its own copy of the control register behind its enable, so each chunk's enable is its own LUT placed
#: beside its own few flip-flops. The copies are kept apart structurally: each one's next value depends
#: on itself (Yosys merges registers of identical inputs, whatever their attributes).
ENABLE_FANOUT = 32


def enable_chunks(width: int, fanout: int = ENABLE_FANOUT) -> list[tuple[int, int]]:
    """Bit ranges ``[lo, hi)`` cutting ``width`` bits into ``ceil(width / fanout)`` chunks of near-equal size."""
    if width < 1 or fanout < 1:
        raise ValueError(f"enable chunks need a positive width and fan-out, got {width} and {fanout}")
    count = -(-width // fanout)
    bounds = [round(j * width / count) for j in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


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
    empty or being emptied, so back-pressure propagates without a bubble. A payload wider than
    ``ENABLE_FANOUT`` bits is loaded in chunks, each under its own copy of the valid bit (``o.valid``
    is the first), so no enable net drives more than one chunk's flip-flops.
    """
    source, target = Value.cast(payload), Value.cast(o.payload)
    if len(source) != len(target):  # extended or truncated as ``target.eq(payload)`` would
        fitted = Signal(len(target), name=f"{o.valid.name}_payload_in")
        m.d.comb += fitted.eq(payload)
        source = fitted
    m.d.comb += i.ready.eq(~o.valid | o.ready)
    for k, (lo, hi) in enumerate(enable_chunks(len(target))):
        valid = o.valid if k == 0 else Signal(name=f"{o.valid.name}_copy_{k}")
        ready = i.ready if k == 0 else ~valid | o.ready
        with m.If(ready):
            m.d.sync += valid.eq(i.valid)
            with m.If(i.valid):
                m.d.sync += target[lo:hi].eq(source[lo:hi])


def tree_reduce(items: Sequence, combine: Callable) -> object:
    """Reduce ``items`` pairwise in a balanced tree, keeping their order (left operand first)."""
    items = list(items)
    while len(items) > 1:
        paired = [combine(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]
