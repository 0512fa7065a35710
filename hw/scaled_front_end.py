"""E4M3 block-scale front-end: raw words + the block's E4M3 scale and reciprocal -> scale byte, signs, codes u.

NUMERICS 8.3 step 4, exactly: ``u_i = min(U - 1, floor(fl32(|x_i| * r) * 2^(g + 1)))`` with
``r = fl32(fl32(1 / t) / s)`` the block's binary32 reciprocal, ``U = 2^(4 + g)`` (64 on the quarter
grid, 32 on the half grid).

Where the scales come from *(project rule, as for NVFP4 in NUMERICS 3.4)*: the tensor scale ``t``
needs the whole tensor's maximum before the first block can be coded, and ``s`` and ``r`` are
binary32 divisions by ``t``; a streaming tile cannot wait for the tensor, so the scale pass
(steps 1-3: ``t``, ``s = E4M3(clamp(fl32(amax_block / top) / t, 2^-6, 448))`` with the 2^-120 floor
of ``t``, and ``r``) runs upstream -- in golden, ``golden.quantize`` -- and every block arrives with its
scale byte and reciprocal. This unit does the per-element part, where the selection's input is formed:

- ``v = fl32(|x| * r)``: the exact product of the significands rounded once to nearest even
  (``hw.float32.round_to_binary32``, the rounding of the NVFP4 PE); bfloat16 input has an 8-bit
  significand, so its multipliers are 8 x 24 bits;
- ``v`` is a binary32 ``sig * 2^(F - 150)`` (``F`` its exponent field), so ``u = sig >> (149 - g - F)``
  for ``v < 8`` (``F <= 129``: the shift is at least ``20 - g``) and ``u = U - 1`` for ``v >= 8``
  (``F >= 130``; infinities included).

Zeros keep their sign bit (``u = 0``). NaN and infinite inputs are outside the contract. The scale
byte passes through as the output's ``exponent`` field (the selector and the buffer carry it as the
NVFP4 tile does). Latency 1 cycle, initiation interval 1.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .common import UnitTiming, register_stage
from .config import ScaledFrontEndConfig
from .float32 import BIAS, FRACTION_BITS, EXPONENT_BITS, round_to_binary32, unpack_binary32
from .layouts import front_end_out_layout, scaled_front_end_in_layout

__all__ = ["ScaledFrontEnd"]

#: Exponent field of 8.0: v >= 8 saturates u.
SATURATION_FIELD = BIAS + 3


class ScaledFrontEnd(wiring.Component):
    """Ports: ``i`` (``scaled_front_end_in_layout``: words, block_scale, reciprocal), ``o``
    (``front_end_out_layout(block, grid)``: the scale byte in ``exponent``, signs, ucodes)."""

    LATENCY = 1
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: ScaledFrontEndConfig) -> None:
        if not isinstance(config, ScaledFrontEndConfig):
            raise TypeError(f"ScaledFrontEnd needs a ScaledFrontEndConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(scaled_front_end_in_layout(config))),
                "o": Out(stream.Signature(front_end_out_layout(config.block, config.grid))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        grid = cfg.grid
        width = cfg.input_bits
        mantissa = width - 1 - EXPONENT_BITS  # 7 (bfloat16) or 23 (binary32): same exponent field
        num_ucodes = grid.num_ucodes
        payload = self.i.payload
        r_sig, r_exp, _, _, _ = unpack_binary32(m, payload.reciprocal, "reciprocal")

        out = Signal(front_end_out_layout(cfg.block, grid), name="result")
        m.d.comb += out.exponent.eq(payload.block_scale)
        for k in range(cfg.block):
            word = payload.words[k]
            field = word[mantissa : width - 1]
            normal = field != 0
            x_sig = Cat(word[:mantissa], normal)  # |x| = x_sig * 2^(max(field, 1) - 127 - mantissa)
            x_exp = Signal(signed(EXPONENT_BITS + 2), name=f"x_exponent_{k}")
            m.d.comb += x_exp.eq(Mux(normal, field, 1) - BIAS - mantissa)
            product = Signal(len(x_sig) + len(r_sig), name=f"product_{k}")
            m.d.comb += product.eq(x_sig * r_sig)
            v = round_to_binary32(m, product, x_exp + r_exp, Const(0, 1), f"v_{k}")
            v_field = v[FRACTION_BITS : FRACTION_BITS + EXPONENT_BITS]
            v_sig = Cat(v[:FRACTION_BITS], v_field != 0)
            # u = v_sig >> (149 - g - F) for F <= 129 (a subnormal v has F = 0 and the unit of F = 1,
            # but its u is 0 either way); shifts past the significand leave 0.
            shift = Signal(range(BIAS + FRACTION_BITS + 2), name=f"shift_{k}")
            m.d.comb += shift.eq((BIAS + FRACTION_BITS - 1 - grid.shift) - Mux(v_field > SATURATION_FIELD - 1, 0, v_field))
            truncated = Signal(len(v_sig), name=f"truncated_{k}")
            m.d.comb += truncated.eq(v_sig >> shift)
            m.d.comb += [
                out.signs[k].eq(word[width - 1]),
                out.ucodes[k].eq(Mux(v_field >= SATURATION_FIELD, num_ucodes - 1, truncated)),
            ]
        register_stage(m, self.i, self.o, out)
        return m
