"""Free-running pipelines with a skid FIFO at the unit boundary (no stall fans out into the datapath).

A pipelined unit here never stalls its datapath registers: every stage register loads every cycle
(no clock enable), a valid bit travels beside the data, and the last stage writes into a small
output FIFO. Flow control is by credit: the unit accepts an input beat only while fewer beats are
inside (pipeline + FIFO) than the FIFO holds, so a beat that enters always finds a FIFO slot, however
long the consumer holds ``o.ready`` low. ``i.ready`` depends on a registered count only (never on
``i.valid`` or ``o.ready``), so units chain without combinational loops.

``Stages`` places register cuts along a list of logic *levels* (a ROM read, one adder-tree level,
one argmin level, ...): with ``cuts`` cuts over ``levels`` levels, a register follows level
``round(j * levels / cuts) - 1`` for ``j = 1 .. cuts``; the last level always gets one (it feeds the
FIFO).

Timing of such a unit: latency = ``cuts + 1`` cycles (the cut registers, then the FIFO's read side
shows the beat one cycle after it was written); initiation interval 1.

``SkidFIFO`` is that output FIFO. Its writer never tests for room (the credit already guarantees it),
so a slot's load enable is one gate of two registers (the write's valid bit and the slot's bit of a
one-hot write pointer) instead of ``amaranth.lib.fifo.SyncFIFO``'s ``w_en & (level != depth)`` and
address decode, which bound both selectors near 91-99 MHz on ECP5 (issue 10): that enable gates
every storage flop of its slot, so it is a wide fan-out net and must start at a register. A slot
wider than ``hw.common.ENABLE_FANOUT`` bits is cut into chunks, each with its own copy of both
pointers, so a slot's enable (and a read pointer bit's select) reaches one chunk's flip-flops only.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .common import enable_chunks

__all__ = ["SkidFIFO", "Stages", "skid_buffer", "skid_output"]


class Stages:
    """Register cuts along ``levels`` logic levels; ``cut(level, values)`` registers ``values`` after a
    level that has a cut (and passes them through otherwise)."""

    def __init__(self, m: Module, levels: int, cuts: int, valid, prefix: str) -> None:
        if cuts < 1:
            raise ValueError(f"a pipelined unit needs at least 1 register cut, got {cuts}")
        cuts = min(cuts, levels)
        self.m, self.prefix = m, prefix
        self.after = {round(j * levels / cuts) - 1 for j in range(1, cuts + 1)}
        self.cuts = len(self.after)
        self.valid = valid
        self._count = 0

    def cut(self, level: int, values: dict) -> dict:
        """Register every value of ``values`` (signals or Amaranth values, or lists of them) after ``level``."""
        if level not in self.after:
            return values
        m, tag = self.m, f"{self.prefix}_s{self._count}"
        self._count += 1
        valid = Signal(name=f"{tag}_valid")
        m.d.sync += valid.eq(self.valid)
        self.valid = valid
        return {name: self._register(value, f"{tag}_{name}") for name, value in values.items()}

    def _register(self, value, name):
        if isinstance(value, (list, tuple)):
            return [self._register(v, f"{name}_{k}") for k, v in enumerate(value)]
        if isinstance(value, data.View):
            reg = Signal(data.Layout.cast(value.shape()), name=name)
        else:
            reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
        self.m.d.sync += reg.eq(value)
        return reg


class SkidFIFO(wiring.Component):
    """A first-word-fall-through FIFO of ``depth`` beats of ``width`` bits for a writer that holds a credit.

    Ports: ``w_en``/``w_data`` (write; **the writer guarantees room**: a write into a full FIFO overwrites
    the oldest beat), ``r_en`` (take the head when ``r_valid``), ``r_valid``/``r_data`` (the head).
    A beat written at a clock edge is at ``r_data`` right after it (``r_valid`` the same cycle), as with
    ``SyncFIFO(fwft=True)``. The storage is ``depth`` registers without reset (a reset empties the FIFO
    by clearing the pointers and the count), the pointers are one-hot rings, and the head is an AND-OR
    of the slots by the read pointer. Each chunk of ``enable_chunks(width)`` bits has its own copy of
    both pointers (``write_at_c`` / ``read_at_c``), equal at all times.
    """

    def __init__(self, width: int, depth: int) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"a skid FIFO needs a positive width, got {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"a skid FIFO needs a positive depth, got {depth!r}")
        self.width, self.depth = width, depth
        super().__init__({"w_en": In(1), "w_data": In(width), "r_en": In(1), "r_valid": Out(1), "r_data": Out(width)})

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self.depth
        slots = [Signal(self.width, name=f"slot_{k}", reset_less=True) for k in range(depth)]
        held = Signal(range(depth + 1), name="held")
        take = Signal(name="take")
        m.d.comb += [take.eq(self.r_valid & self.r_en), self.r_valid.eq(held != 0)]
        m.d.sync += held.eq(held + self.w_en - take)
        for c, (lo, hi) in enumerate(enable_chunks(self.width)):
            write_at = Signal(depth, init=1, name=f"write_at_{c}")  # one-hot: the slot the next write fills
            read_at = Signal(depth, init=1, name=f"read_at_{c}")  # one-hot: the head's slot
            for k, slot in enumerate(slots):
                with m.If(self.w_en & write_at[k]):
                    m.d.sync += slot[lo:hi].eq(self.w_data[lo:hi])
            if depth > 1:
                with m.If(self.w_en):
                    m.d.sync += write_at.eq(Cat(write_at[-1], write_at[:-1]))
                with m.If(take):
                    m.d.sync += read_at.eq(Cat(read_at[-1], read_at[:-1]))
            head = 0
            for k, slot in enumerate(slots):
                head = head | Mux(read_at[k], slot[lo:hi], 0)
            m.d.comb += self.r_data[lo:hi].eq(head)
        return m


def skid_output(m: Module, i, o, payload, valid, latency: int, prefix: str = "skid") -> None:
    """Connect a free-running pipeline to the stream ports: credit-based ``i.ready``, FIFO into ``o``.

    ``payload``/``valid`` are the pipeline's last stage (registered); ``latency`` the unit's latency
    (input handshake to ``o.valid``: the cut registers plus the FIFO's one cycle). The FIFO holds
    ``latency + 1`` beats: with an always-ready consumer ``latency`` beats are inside when the next
    one arrives, so the unit takes one beat per cycle.
    """
    depth = latency + 1
    width = len(o.payload.as_value()) if isinstance(o.payload, data.View) else len(o.payload)
    fifo = SkidFIFO(width, depth)
    m.submodules[f"{prefix}_fifo"] = fifo
    inside = Signal(range(depth + 1), name=f"{prefix}_inside")
    accept = Signal(name=f"{prefix}_accept")
    leave = Signal(name=f"{prefix}_leave")
    m.d.comb += [
        i.ready.eq(inside < depth),
        accept.eq(i.valid & i.ready),
        leave.eq(o.valid & o.ready),
        fifo.w_en.eq(valid),
        fifo.w_data.eq(payload),
        o.valid.eq(fifo.r_valid),
        o.payload.eq(fifo.r_data),
        fifo.r_en.eq(o.ready),
    ]
    m.d.sync += inside.eq(inside + accept - leave)


def skid_buffer(m: Module, i, o, prefix: str) -> None:
    """A one-entry skid buffer from stream ``i`` to stream ``o`` (same payload): ``i.ready`` is a register
    (the skid entry is empty), so the consumer's ``o.ready`` stops here instead of running on into the
    producer's clock enables. Zero latency: while the entry is empty a beat passes straight through and
    is caught in the entry only if ``o`` does not take it; ``o`` shows the entry first. The entry is
    cut into ``enable_chunks``, each under its own copy of ``held`` (the first is ``i.ready``'s)."""
    incoming = Value.cast(i.payload)
    entry = Signal(len(incoming), name=f"{prefix}_entry", reset_less=True)
    shown = Signal(len(incoming), name=f"{prefix}_shown")
    for c, (lo, hi) in enumerate(enable_chunks(len(incoming))):
        held = Signal(name=f"{prefix}_held" if c == 0 else f"{prefix}_held_copy_{c}")
        if c == 0:
            m.d.comb += [i.ready.eq(~held), o.valid.eq(held | i.valid)]
        m.d.comb += shown[lo:hi].eq(Mux(held, entry[lo:hi], incoming[lo:hi]))
        with m.If(held):
            with m.If(o.ready):
                m.d.sync += held.eq(0)
        with m.Elif(i.valid & ~o.ready):
            m.d.sync += [held.eq(1), entry[lo:hi].eq(incoming[lo:hi])]
    m.d.comb += o.payload.eq(shown)
