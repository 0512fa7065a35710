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
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.lib.fifo import SyncFIFO

__all__ = ["Stages", "skid_output"]


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


def skid_output(m: Module, i, o, payload, valid, latency: int, prefix: str = "skid") -> None:
    """Connect a free-running pipeline to the stream ports: credit-based ``i.ready``, FIFO into ``o``.

    ``payload``/``valid`` are the pipeline's last stage (registered); ``latency`` the unit's latency
    (input handshake to ``o.valid``: the cut registers plus the FIFO's one cycle). The FIFO holds
    ``latency + 1`` beats: with an always-ready consumer ``latency`` beats are inside when the next
    one arrives, so the unit takes one beat per cycle.
    """
    depth = latency + 1
    width = len(o.payload.as_value()) if isinstance(o.payload, data.View) else len(o.payload)
    fifo = SyncFIFO(width=width, depth=depth)
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
        o.valid.eq(fifo.r_rdy),
        o.payload.eq(fifo.r_data),
        fifo.r_en.eq(o.ready),
    ]
    m.d.sync += inside.eq(inside + accept - leave)
