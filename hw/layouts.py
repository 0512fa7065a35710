"""Bit layouts of every stream payload, derived from the configs and ``golden.formats`` constants.

Amaranth ``StructLayout`` fields run least-significant first; the cocotb side packs and unpacks the
same layouts (``sim.payload``), so no offset or width is typed twice.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data

from golden.formats import CODE_BITS, EXPONENT_BITS, MAX_HALF_UNITS, Grid

from .config import DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, ScaledFrontEndConfig, TwoStageConfig

__all__ = [
    "BF16_BITS",
    "FLOAT32_BITS",
    "MAGNITUDE_BITS",
    "decoder_in_layout",
    "decoder_out_layout",
    "element_layout",
    "grid_element_layout",
    "front_end_in_layout",
    "front_end_out_layout",
    "mac_in_layout",
    "mac_operand_layout",
    "mac_out_layout",
    "scaled_front_end_in_layout",
    "selector_in_layout",
    "selector_out_layout",
]

#: Raw bfloat16 element: 1 sign, 8 exponent, 7 mantissa bits.
BF16_BITS = 16
#: IEEE binary32 result word.
FLOAT32_BITS = 32
#: Bits of a decoded magnitude in half units (0..MAX_HALF_UNITS).
MAGNITUDE_BITS = MAX_HALF_UNITS.bit_length()


def front_end_in_layout(config: FrontEndConfig) -> data.ArrayLayout:
    """``block`` raw bfloat16 words, element 0 in the least significant bits."""
    return data.ArrayLayout(BF16_BITS, config.block)


def front_end_out_layout(block: int, grid: Grid = Grid.HALF) -> data.StructLayout:
    """Scale byte (the biased shared exponent, or an E4M3 block scale), one sign bit and one code u
    per element: 5 bits on the half grid (NUMERICS 2.1), 6 on the quarter grid (8.1)."""
    return data.StructLayout(
        {
            "exponent": unsigned(EXPONENT_BITS),
            "signs": data.ArrayLayout(1, block),
            "ucodes": data.ArrayLayout(grid.ucode_bits, block),
        }
    )


def scaled_front_end_in_layout(config: ScaledFrontEndConfig) -> data.StructLayout:
    """``block`` raw input words (element 0 in the least significant bits), the block's E4M3 scale
    byte and the binary32 bits of its reciprocal ``r = fl32(fl32(1 / t) / s)`` (NUMERICS 8.3 step 3)."""
    return data.StructLayout(
        {
            "words": data.ArrayLayout(config.input_bits, config.block),
            "block_scale": unsigned(EXPONENT_BITS),
            "reciprocal": unsigned(FLOAT32_BITS),
        }
    )


def selector_in_layout(config: DSUConfig | TwoStageConfig) -> data.StructLayout:
    """A front-end block; the DSU adds a candidate mask, bit d allowing dialect d."""
    fields = dict(front_end_out_layout(config.block, config.grid).members)
    if isinstance(config, DSUConfig):
        fields["mask"] = unsigned(config.num_dialects)
    return data.StructLayout(fields)


def selector_out_layout(config: DSUConfig | TwoStageConfig) -> data.StructLayout:
    """Exponent byte passed through, the chosen dialect id and one 4-bit element code per element."""
    return data.StructLayout(
        {
            "exponent": unsigned(EXPONENT_BITS),
            "dialect": unsigned(config.book.formatbook.id_bits),
            "codes": data.ArrayLayout(CODE_BITS, config.block),
        }
    )


def grid_element_layout(grid: Grid) -> data.StructLayout:
    """One decoded element: magnitude in grid units (4 bits half, 5 bits quarter) and the sign."""
    return data.StructLayout({"magnitude": unsigned(grid.magnitude_bits), "sign": unsigned(1)})


#: One decoded element: magnitude in half units and the sign (NUMERICS 2.1 steps 5-6).
element_layout = grid_element_layout(Grid.HALF)
assert MAGNITUDE_BITS == Grid.HALF.magnitude_bits


def decoder_in_layout(config: DecoderConfig) -> data.StructLayout:
    """``format`` indexes ``config.books``; ``dialect`` is as wide as the largest formatbook's id."""
    return data.StructLayout(
        {
            "format": unsigned(max(1, (len(config.books) - 1).bit_length())),
            "dialect": unsigned(max(b.formatbook.id_bits for b in config.books)),
            "codes": data.ArrayLayout(CODE_BITS, config.lanes),
        }
    )


def decoder_out_layout(config: DecoderConfig) -> data.ArrayLayout:
    return data.ArrayLayout(grid_element_layout(config.grid), config.lanes)


def mac_operand_layout(block: int, grid: Grid = Grid.HALF) -> data.StructLayout:
    """One decoded block: scale byte (biased E8M0 exponent, or E4M3 block scale) and ``block`` decoded
    elements in ``grid`` units."""
    return data.StructLayout({"exponent": unsigned(EXPONENT_BITS), "elements": data.ArrayLayout(grid_element_layout(grid), block)})


def mac_in_layout(config: MACArrayConfig) -> data.StructLayout:
    """One K step: an activation block per row, a weight block per column; ``last`` ends the K loop."""
    operand = mac_operand_layout(config.block, config.grid)
    return data.StructLayout(
        {
            "a": data.ArrayLayout(operand, config.rows),
            "w": data.ArrayLayout(operand, config.cols),
            "last": unsigned(1),
        }
    )


def mac_out_layout(config: MACArrayConfig) -> data.ArrayLayout:
    """binary32 bit patterns ``y[row][col]``."""
    return data.ArrayLayout(data.ArrayLayout(FLOAT32_BITS, config.cols), config.rows)
