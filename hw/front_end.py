"""Block front-end: one block of raw bfloat16 values -> exponent byte, signs, codes u.

NUMERICS 2.1 steps 1-3, exactly (integer arithmetic on the bfloat16 fields):

- ``amax`` is the largest 15-bit magnitude field (bfloat16 magnitudes order as integers);
- ``E = max(Ex_max - SCALE_OFFSET, 0)`` where ``Ex_max`` is amax's biased exponent field; a
  subnormal or zero amax gives ``E = 0`` (the clamp ``e >= -127`` and the all-zero rule);
- each element is ``sig * 2^(ex - BF16_BIAS - BF16_MANTISSA)`` with ``ex = max(Ex, 1)`` and the
  hidden bit in ``sig``, so ``u = floor(|x| 2^(2 - e)) = sig >> (E - ex + BF16_MANTISSA - SCALE_OFFSET)``
  (the shift is >= 3 for every finite input because ``E >= Ex_max - SCALE_OFFSET``), then ``min(31, u)``.

On the quarter grid (``FrontEndConfig.grid``, NUMERICS 8.2) ``u`` keeps one more fraction bit:
``u = min(63, floor(|x| 2^(3 - e)))``, the same shift minus one (still >= 2), with the same exponent.

Infinities and NaNs are outside the contract (the golden model rejects them); the unit does not
flag them. Latency 1 cycle, initiation interval 1.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import EXPONENT_BIAS, EXPONENT_BITS, UCODE_BITS, Grid

from .common import UnitTiming, register_stage, tree_reduce
from .config import FrontEndConfig
from .layouts import BF16_BITS, front_end_in_layout, front_end_out_layout

__all__ = ["BlockFrontEnd"]

BF16_MANTISSA = 7
BF16_EXPONENT_BITS = BF16_BITS - 1 - BF16_MANTISSA
BF16_BIAS = (1 << (BF16_EXPONENT_BITS - 1)) - 1
#: Integer bits of u minus one: amax * 2^-e lies in [4, 8) = [2^SCALE_OFFSET, 2^(SCALE_OFFSET+1)).
UCODE_FRACTION_BITS = 2
SCALE_OFFSET = UCODE_BITS - UCODE_FRACTION_BITS - 1
#: E = Ex_max - BF16_BIAS - SCALE_OFFSET + EXPONENT_BIAS for a normal amax.
EXPONENT_SHIFT = BF16_BIAS + SCALE_OFFSET - EXPONENT_BIAS


class BlockFrontEnd(wiring.Component):
    """Stream of raw bfloat16 blocks in, stream of (exponent, signs, ucodes) out.

    Ports: ``i`` (``ArrayLayout(16, block)``), ``o`` (``front_end_out_layout(block, grid)``).
    """

    LATENCY = 1
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: FrontEndConfig) -> None:
        if not isinstance(config, FrontEndConfig):
            raise TypeError(f"BlockFrontEnd needs a FrontEndConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(front_end_in_layout(config))),
                "o": Out(stream.Signature(front_end_out_layout(config.block, config.grid))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        block, grid = self.config.block, self.config.grid
        num_ucodes = grid.num_ucodes
        # Fraction bits of u beyond the half grid's two: each shifts one bit less.
        extra_fraction = grid.shift - Grid.HALF.shift
        words = [self.i.payload[k] for k in range(block)]
        magnitude_bits = BF16_BITS - 1
        amax = Signal(magnitude_bits, name="amax")
        m.d.comb += amax.eq(tree_reduce([w[:magnitude_bits] for w in words], lambda a, b: Mux(a > b, a, b)))
        amax_exp = amax[BF16_MANTISSA:]
        exponent = Signal(EXPONENT_BITS, name="exponent")
        m.d.comb += exponent.eq(Mux(amax_exp > EXPONENT_SHIFT, amax_exp - EXPONENT_SHIFT, 0))

        out = Signal(front_end_out_layout(block, grid), name="result")
        m.d.comb += out.exponent.eq(exponent)
        for k, word in enumerate(words):
            field = word[BF16_MANTISSA:magnitude_bits]
            normal = field != 0
            significand = Cat(word[:BF16_MANTISSA], normal)
            ex = Mux(normal, field, 1)
            shift = Signal(unsigned(EXPONENT_BITS + 1), name=f"shift_{k}")
            m.d.comb += shift.eq(exponent - ex + (BF16_MANTISSA - SCALE_OFFSET - extra_fraction))
            truncated = Signal(len(significand), name=f"truncated_{k}")
            m.d.comb += truncated.eq(significand >> shift)
            m.d.comb += [
                out.signs[k].eq(word[BF16_BITS - 1]),
                out.ucodes[k].eq(Mux(truncated >= num_ucodes, num_ucodes - 1, truncated)),
            ]
        register_stage(m, self.i, self.o, out)
        return m
