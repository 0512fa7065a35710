"""MAC array: ``rows x cols`` processing elements, output-stationary, bit-exact NUMERICS section 4.

Dataflow: every input beat is one K block: an activation block per row and a weight block per
column (decoded elements: sign + half-unit magnitude, and the biased E8M0 exponent byte). PE
``(r, c)`` owns output ``y[r][c]``; it forms

    acc  = sum_i (-1)^(s_a,i ^ s_w,i) * h_a,i * h_w,i         (stage 1: products, adder tree)
    term = fl32(acc * 2^(E_a + E_w - 2 * (127 + 1)))          (stage 2: one RNE rounding)
    y    = fl32(y + term)                                      (stage 3: RNE adder, y starts at +0.0)

in increasing K order (the beat order). A beat with ``last`` set finishes the K loop: the ``rows x
cols`` results go to the output register (one output beat) and every ``y`` restarts at +0.0.

Timing: one K block per cycle (initiation interval 1); the output beat is valid 3 cycles after the
handshake of the ``last`` input beat (``LATENCY``). The whole pipeline stalls while an output beat
waits (``i.ready = ~o.valid | o.ready``). The NVFP4 scale path (E4M3 block scales times the float32
tensor scales) is not in the array: it would need two binary32 multipliers per PE; the array
covers the E8M0-scaled formats (FB32, DialectFP4-16, MXFP4).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import EXPONENT_BIAS, EXPONENT_BITS, MAX_HALF_UNITS

from .common import UnitTiming, tree_reduce
from .config import MACArrayConfig
from .float32 import add_binary32, term_to_binary32
from .layouts import FLOAT32_BITS, mac_in_layout, mac_out_layout

__all__ = ["MACArray"]

#: A decoded element is h * 2^(e - 1) (h in half units), so a product of two carries 2^(e_a + e_w - 2).
HALF_UNIT_EXPONENT = 1


class MACArray(wiring.Component):
    """Ports: ``i`` (``mac_in_layout``: a[rows], w[cols], last), ``o`` (``mac_out_layout``: y[rows][cols])."""

    LATENCY = 3
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: MACArrayConfig) -> None:
        if not isinstance(config, MACArrayConfig):
            raise TypeError(f"MACArray needs a MACArrayConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(mac_in_layout(config))),
                "o": Out(stream.Signature(mac_out_layout(config))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        acc_bits = (cfg.block * MAX_HALF_UNITS * MAX_HALF_UNITS).bit_length() + 1
        shift_bits = EXPONENT_BITS + 3
        shift_offset = 2 * (EXPONENT_BIAS + HALF_UNIT_EXPONENT)

        advance = Signal(name="advance")
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(advance)
        beat = self.i.payload

        valid = [Signal(name=f"stage{s}_valid") for s in (1, 2)]
        last = [Signal(name=f"stage{s}_last") for s in (1, 2)]
        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), last[0].eq(beat.last)]
            m.d.sync += [valid[1].eq(valid[0]), last[1].eq(last[0])]
            m.d.sync += self.o.valid.eq(valid[1] & last[1])

        for r in range(cfg.rows):
            for c in range(cfg.cols):
                pe = f"pe_{r}_{c}"
                a, w = beat.a[r], beat.w[c]
                products = []
                for k in range(cfg.block):
                    ea, ew = a.elements[k], w.elements[k]
                    product = ea.magnitude * ew.magnitude
                    products.append(Mux(ea.sign ^ ew.sign, -product, product))
                acc = Signal(signed(acc_bits), name=f"{pe}_acc")
                shift = Signal(signed(shift_bits), name=f"{pe}_shift")
                with m.If(advance):
                    m.d.sync += [
                        acc.eq(tree_reduce(products, lambda x, y: x + y)),
                        shift.eq(a.exponent + w.exponent - shift_offset),
                    ]

                term_bits = term_to_binary32(m, acc, shift, f"{pe}_term")
                term = Signal(FLOAT32_BITS, name=f"{pe}_term")
                with m.If(advance):
                    m.d.sync += term.eq(term_bits)

                y = Signal(FLOAT32_BITS, name=f"{pe}_y")
                total = add_binary32(m, y, term, f"{pe}_add")
                with m.If(advance & valid[1]):
                    with m.If(last[1]):
                        m.d.sync += [y.eq(0), self.o.payload[r][c].eq(total)]
                    with m.Else():
                        m.d.sync += y.eq(total)
        return m
