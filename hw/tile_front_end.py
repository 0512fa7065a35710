"""Tile-side activation quantizer parts: a block front-end for any IEEE input float, and the MXFP4 encoder.

``FloatFrontEnd`` is NUMERICS 2.1 steps 1-3 for bfloat16 *or* binary32 input words (the issue-5
``hw.BlockFrontEnd`` reads bfloat16 only). The tile needs binary32 input to replay captured layers
exactly: the decomposition residual ``R = X_S - deq(Q1_S)`` is a binary32 value that bfloat16 cannot
hold. With ``inexact=True`` it also reports, per element, whether the truncation to ``u`` dropped a
nonzero bit: that sticky bit is what round-to-nearest-even to E2M1 needs.

For input field widths (exponent ``X`` bits, bias ``b``, mantissa ``F`` bits), integer arithmetic only:

- ``amax`` is the largest magnitude field (IEEE magnitudes order as integers); with ``Ex_max`` its
  exponent field, ``E = max(Ex_max - b - SCALE_OFFSET + 127, 0)`` (the ``e >= -127`` clamp and the
  all-zero rule; ``e <= 127`` holds for every finite bfloat16 / binary32 input);
- an element is ``sig * 2^(ex - b - F)`` with ``ex = max(Ex, 1)`` and the hidden bit in ``sig``, so
  ``u = floor(|x| 2^(2 - e)) = sig >> (E - ex + F + b - 127 - SCALE_OFFSET)``; the shift is never
  negative because ``E >= Ex_max - b - SCALE_OFFSET + 127``. ``u <= 31`` always (``|x| < 2^(e + 3)``).
  On the quarter grid (``FloatFrontEndConfig.grid``) ``u = floor(|x| 2^(3 - e)) <= 63``: a shift one less.

``E2M1Encoder`` turns ``(exponent, signs, u, inexact)`` into MXFP4 element codes (NUMERICS 3): with
``v = |x| 2^-e`` in ``[0, 8)`` and the E2M1 midpoints ``t_k = (h_k + h_(k+1)) / 4`` (``h``: E2M1 half
units, so ``4 t_k`` is an integer ``T_k``), ``v > t_k`` iff ``u > T_k`` or (``u == T_k`` and inexact),
and ``v == t_k`` iff ``u == T_k`` and exact. The index is the number of midpoints below ``v``, plus
one on a tie whose lower code is odd (round half to even on the code); 6 and above saturate to code 7.
The shared exponent is the dialect one: OCP's FLOOR rule ``X = 2^(floor(log2 amax) - 2)``.

Both units: latency 1 cycle, initiation interval 1.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import CODE_BITS, E2M1, EXPONENT_BIAS, EXPONENT_BITS, Grid

from .common import UnitTiming, register_stage, tree_reduce
from .config import BLOCK_SIZES, ConfigError
from .front_end import SCALE_OFFSET

__all__ = [
    "E2M1Encoder",
    "E2M1EncoderConfig",
    "FloatFrontEnd",
    "FloatFrontEndConfig",
    "InputFloat",
    "encoded_block_layout",
    "float_front_end_in_layout",
    "float_front_end_out_layout",
]


class InputFloat(enum.Enum):
    """IEEE input word formats the tile's front-end accepts."""

    BF16 = "bf16"
    FP32 = "fp32"

    @property
    def exponent_bits(self) -> int:
        return 8

    @property
    def mantissa_bits(self) -> int:
        return {InputFloat.BF16: 7, InputFloat.FP32: 23}[self]

    @property
    def width(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1


def _check_block(block: int) -> None:
    if block not in BLOCK_SIZES:
        raise ConfigError(f"block size must be one of {list(BLOCK_SIZES)}, got {block!r}")


@dataclass(frozen=True, kw_only=True)
class FloatFrontEndConfig:
    """``block`` input words of format ``input``; ``inexact`` adds the per-element sticky bits; ``grid``
    quarter gives 6-bit codes ``u = floor(|x| 2^(3 - e))`` (NUMERICS 8.2; one bit less of shift)."""

    block: int = 32
    input: InputFloat = InputFloat.FP32
    inexact: bool = False
    grid: Grid = Grid.HALF

    def __post_init__(self) -> None:
        _check_block(self.block)
        if not isinstance(self.input, InputFloat):
            raise ConfigError(f"input must be an hw.tile_front_end.InputFloat, got {self.input!r}")
        if not isinstance(self.inexact, bool):
            raise ConfigError(f"inexact must be True or False, got {self.inexact!r}")
        if not isinstance(self.grid, Grid):
            raise ConfigError(f"grid must be a golden.formats.Grid, got {self.grid!r}")

    @property
    def name(self) -> str:
        grid = "" if self.grid is Grid.HALF else "_q"
        return f"float_front_end_{self.input.value}_b{self.block}{grid}{'_sticky' if self.inexact else ''}"

    def to_json(self) -> str:
        extra = {} if self.grid is Grid.HALF else {"grid": self.grid.value}
        return json.dumps({"unit": "float_front_end", "block": self.block, "input": self.input.value,
                           "inexact": self.inexact, **extra}, sort_keys=True)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class E2M1EncoderConfig:
    """MXFP4 element encoder over blocks of ``block`` elements."""

    block: int = 32

    def __post_init__(self) -> None:
        _check_block(self.block)

    @property
    def name(self) -> str:
        return f"e2m1_encoder_b{self.block}"

    def to_json(self) -> str:
        return json.dumps({"unit": "e2m1_encoder", "block": self.block}, sort_keys=True)


def float_front_end_in_layout(config: FloatFrontEndConfig) -> data.ArrayLayout:
    """``block`` raw input words, element 0 in the least significant bits."""
    return data.ArrayLayout(config.input.width, config.block)


def float_front_end_out_layout(block: int, inexact: bool, grid: Grid = Grid.HALF) -> data.StructLayout:
    """Biased exponent byte, signs, 5-bit codes u (6-bit on the quarter grid), and (``inexact``) one
    sticky bit per element."""
    fields = {
        "exponent": unsigned(EXPONENT_BITS),
        "signs": data.ArrayLayout(1, block),
        "ucodes": data.ArrayLayout(grid.ucode_bits, block),
    }
    if inexact:
        fields["inexact"] = data.ArrayLayout(1, block)
    return data.StructLayout(fields)


def encoded_block_layout(block: int, id_bits: int) -> data.StructLayout:
    """A quantized block: exponent byte, dialect id (0 for E2M1) and one 4-bit code per element."""
    return data.StructLayout(
        {
            "exponent": unsigned(EXPONENT_BITS),
            "dialect": unsigned(id_bits),
            "codes": data.ArrayLayout(CODE_BITS, block),
        }
    )


class FloatFrontEnd(wiring.Component):
    """Stream of raw ``input`` blocks in, stream of (exponent, signs, ucodes[, inexact]) out."""

    LATENCY = 1
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: FloatFrontEndConfig) -> None:
        if not isinstance(config, FloatFrontEndConfig):
            raise TypeError(f"FloatFrontEnd needs a FloatFrontEndConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(float_front_end_in_layout(config))),
                "o": Out(stream.Signature(float_front_end_out_layout(config.block, config.inexact, config.grid))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        fmt = cfg.input
        mantissa = fmt.mantissa_bits
        magnitude_bits = fmt.width - 1
        significand_bits = mantissa + 1
        # E = Ex_max - (bias + SCALE_OFFSET - EXPONENT_BIAS) for a normal amax, clamped at 0.
        exponent_shift = fmt.bias + SCALE_OFFSET - EXPONENT_BIAS
        # u = sig >> (E - ex + shift_offset)
        shift_offset = mantissa + fmt.bias - EXPONENT_BIAS - SCALE_OFFSET - (cfg.grid.shift - Grid.HALF.shift)

        words = [self.i.payload[k] for k in range(cfg.block)]
        amax = Signal(magnitude_bits, name="amax")
        m.d.comb += amax.eq(tree_reduce([w[:magnitude_bits] for w in words], lambda a, b: Mux(a > b, a, b)))
        amax_exp = amax[mantissa:]
        exponent = Signal(EXPONENT_BITS, name="exponent")
        m.d.comb += exponent.eq(Mux(amax_exp > exponent_shift, amax_exp - exponent_shift, 0))

        out = Signal(float_front_end_out_layout(cfg.block, cfg.inexact, cfg.grid), name="result")
        m.d.comb += out.exponent.eq(exponent)
        # Shifts of significand_bits or more leave nothing: clamp so the shifters stay narrow.
        limit = significand_bits
        for k, word in enumerate(words):
            field = word[mantissa:magnitude_bits]
            normal = field != 0
            significand = Signal(significand_bits, name=f"significand_{k}")
            m.d.comb += significand.eq(Cat(word[:mantissa], normal))
            ex = Mux(normal, field, 1)
            raw_shift = Signal(unsigned(fmt.exponent_bits + 2), name=f"raw_shift_{k}")
            m.d.comb += raw_shift.eq(exponent - ex + shift_offset)
            shift = Signal(range(limit + 1), name=f"shift_{k}")
            m.d.comb += shift.eq(Mux(raw_shift > limit, limit, raw_shift))
            truncated = Signal(cfg.grid.ucode_bits, name=f"ucode_{k}")
            m.d.comb += truncated.eq(significand >> shift)
            m.d.comb += [out.signs[k].eq(word[-1]), out.ucodes[k].eq(truncated)]
            if cfg.inexact:
                dropped = Signal(significand_bits, name=f"dropped_{k}")
                ones = Const((1 << significand_bits) - 1, significand_bits)
                m.d.comb += dropped.eq(significand & ~(ones << shift)[:significand_bits])
                m.d.comb += out.inexact[k].eq(dropped != 0)
        register_stage(m, self.i, self.o, out)
        return m


class E2M1Encoder(wiring.Component):
    """(exponent, signs, ucodes, inexact) -> (exponent, dialect 0, E2M1 codes), NUMERICS 3 (MXFP4)."""

    LATENCY = 1
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: E2M1EncoderConfig) -> None:
        if not isinstance(config, E2M1EncoderConfig):
            raise TypeError(f"E2M1Encoder needs an E2M1EncoderConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(float_front_end_out_layout(config.block, True))),
                "o": Out(stream.Signature(encoded_block_layout(config.block, E2M1.id_bits))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        block = self.config.block
        halves = [int(h) for h in E2M1.half_units[0]]
        thresholds = [halves[k] + halves[k + 1] for k in range(len(halves) - 1)]  # 4 * midpoint
        payload = self.i.payload
        out = Signal(encoded_block_layout(block, E2M1.id_bits), name="encoded")
        m.d.comb += out.exponent.eq(payload.exponent)
        for i in range(block):
            u, inexact = payload.ucodes[i], payload.inexact[i]
            above = [(u > t) | ((u == t) & inexact) for t in thresholds]
            odd_ties = [(u == t) & ~inexact for k, t in enumerate(thresholds) if k % 2 == 1]
            index = Signal(CODE_BITS - 1, name=f"index_{i}")
            count = tree_reduce([a.as_unsigned() for a in above], lambda a, b: a + b)
            m.d.comb += index.eq(count + tree_reduce(odd_ties, lambda a, b: a | b))
            m.d.comb += out.codes[i].eq(Cat(index, payload.signs[i]))
        register_stage(m, self.i, self.o, out)
        return m
