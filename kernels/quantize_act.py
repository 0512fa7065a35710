"""Activation quantization: float rows -> packed codes, exponent bytes and dialect ids.

One program quantizes ``ROWS`` rows of one block column, each thread whole blocks of its own rows
(so no reduction over a block leaves the thread). The front-end (NUMERICS 2.1 steps 1-3):

* the block's shared exponent is ``e = max(F_amax - 129, -127)`` where ``F_amax`` is the exponent
  field of the block maximum (a subnormal or zero maximum gives the clamp value -127, byte 0);
* ``u = min(31, floor(|x| 2^(2 - e)))``: the twin computes it on the bit pattern,
  ``m >> (148 + e - f)`` for ``|x| = m * 2^(f - 150)``; the kernel by two exact multiplies by
  powers of two and a truncation (kernels/README.md, "How the kernels stay exact").

Dialect selection is the LUT rule (``cost[d] = sum ERR[d][u]``, from subset counts and the Moebius
transform of ERR; first minimum, optional candidate mask) or, for DialectFP4-16, BlockDialect's two-stage rule; MXFP4 rounds ``x / 2^e`` to E2M1 with a
table indexed by ``u`` and by whether ``|x| 2^(2-e)`` is exactly ``u`` (every E2M1 midpoint is a
whole number of quarter units, so ``u`` and that flag decide the rounding, ties included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from golden.blocks import InputError
from golden.formats import CODE_BITS, EXPONENT_BIAS, NUM_UCODES, FormatError, FormatSpec, Scale, Selection
from golden.quantize import E4M3_DIALECT_MIN_TENSOR_SCALE, E4M3_MAX, E4M3_MIN_NORMAL
from golden.select import check_candidate_mask

from .launch import LAUNCH_OPTIONS, check_runnable, interpreting
from .packed import PackedOperand
from .tables import (
    FLOAT32_BIAS,
    ERR_SPLIT,
    FLOAT32_MANTISSA_BITS,
    ActivationRule,
    activation_rule,
    format_tables,
    kernel_format,
)

__all__ = ["QuantizeConfig", "quantize_activations", "quantize_activations_torch"]

_MANTISSA_BITS = tl.constexpr(FLOAT32_MANTISSA_BITS)
_FLOAT_SIGN_BIT = tl.constexpr(31)  # bit 31 of a binary32 pattern
_FLOAT32_BIAS = tl.constexpr(FLOAT32_BIAS)
#: e = exponent field of the block maximum - _FIELD_TO_E (bias 127, then floor(log2 amax) - 2).
_FIELD_TO_E = tl.constexpr(FLOAT32_BIAS + 2)
_U_MAX = tl.constexpr(NUM_UCODES - 1)
_EXP_BIAS = tl.constexpr(EXPONENT_BIAS)
_NUM_UCODES = tl.constexpr(NUM_UCODES)
_SIGN_SHIFT = tl.constexpr(CODE_BITS - 1)  # position of the sign bit in a code
_CODE_SIGN = tl.constexpr(1 << (CODE_BITS - 1))
_RULE_LUT = tl.constexpr(int(ActivationRule.LUT))
_RULE_TWO_STAGE = tl.constexpr(int(ActivationRule.TWO_STAGE))
_RULE_MXFP4 = tl.constexpr(int(ActivationRule.MXFP4))
#: Larger than any LUT cost (32 * 961 < 2^15 for B <= 32, < 2^16 for B = 64); times the padded
#: dialect count (at most _MAX_DIALECTS_PAD) plus an id it stays below 2^31.
_NO_CANDIDATE = tl.constexpr(1 << 24)
_MAX_DIALECTS_PAD = tl.constexpr(64)
_ERR_SPLIT = tl.constexpr(ERR_SPLIT)
#: E4M3 block scales (NUMERICS 8.3): 3 fraction bits, so a binary32 pattern drops 20 bits (rounded
#: to nearest even by adding 2^19 - 1 plus the lowest kept bit); exponent bias 7 against 127.
E4M3_FRACTION_BITS = 3
E4M3_BIAS = 1 - int(math.log2(E4M3_MIN_NORMAL))
_E4M3_DROPPED_BITS = tl.constexpr(FLOAT32_MANTISSA_BITS - E4M3_FRACTION_BITS)
_E4M3_HALF_ULP = tl.constexpr((1 << (FLOAT32_MANTISSA_BITS - E4M3_FRACTION_BITS - 1)) - 1)
_E4M3_REBIAS = tl.constexpr((FLOAT32_BIAS - E4M3_BIAS) << E4M3_FRACTION_BITS)
_E4M3_MAX = tl.constexpr(E4M3_MAX)
_E4M3_MIN_NORMAL = tl.constexpr(E4M3_MIN_NORMAL)
_MIN_TENSOR_SCALE = tl.constexpr(E4M3_DIALECT_MIN_TENSOR_SCALE)

#: The exponent byte the front-end produces for a block holding a NaN or an infinity (exponent field
#: 255); finite blocks stay at or below EXPONENT_BIAS + 125, so this byte flags them for the wrapper.
NONFINITE_EXPONENT_BYTE = (2 * FLOAT32_BIAS + 1) - (FLOAT32_BIAS + 2) + EXPONENT_BIAS

#: Activations the kernels take; each converts to binary32 exactly.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class QuantizeConfig:
    """Launch shape of the quantization kernel: rows per program and warps.

    ``rows=None`` (the default) picks ``num_warps * 32 * max(1, 64 // block)`` rows: each thread
    quantizes whole blocks of its own rows, about 64 values (the AOT report's configurations); half
    as many on the quarter grid (64 codes u: two histograms per block, which would spill at 64 values).
    """

    rows: int | None = None
    num_warps: int = 2

    def __post_init__(self) -> None:
        if self.rows is not None and (self.rows < 16 or self.rows & (self.rows - 1)):
            raise InputError(f"rows per program must be a power of two of at least 16, got {self.rows}")
        if self.num_warps < 1 or self.num_warps & (self.num_warps - 1):
            raise InputError(f"warps per program must be a power of two, got {self.num_warps}")

    def rows_for(self, block: int, num_ucodes: int = NUM_UCODES) -> int:
        """Rows per program for blocks of ``block`` values with ``num_ucodes`` codes u (32 or 64)."""
        if self.rows is not None:
            return self.rows
        return max(16, self.num_warps * 32 * max(1, 64 // block) * NUM_UCODES // num_ucodes)


@triton.jit
def _count_word(u, word, one, WORD: tl.constexpr):
    """Byte counters of bins 8 WORD .. 8 WORD + 7 over each row's block: (low, high) words per row.

    Per piece (VEC <= 15 values, so a nibble cannot overflow) the bins ``u`` with ``u >> 3 == WORD``
    are counted in nibble ``u & 7`` of one word; its even nibbles (bins ``8 WORD + 0, 2, 4, 6``)
    and odd nibbles (``8 WORD + 1, 3, 5, 7``) are then summed over the pieces as bytes (a block
    holds at most 64 values). ``tables.HISTOGRAM_BINS`` is the resulting order of the bins.
    """
    nibbles = tl.sum(tl.where(word == WORD, one, 0), axis=2)  # (PIECES, ROWS)
    low = tl.sum(nibbles & 0x0F0F0F0F, axis=0)
    high = tl.sum((nibbles >> 4) & 0x0F0F0F0F, axis=0)
    return low, high


@triton.jit
def _histogram(u):
    """(R, 32) int8 counts of each u (0..31) in each row's block, without leaving the thread."""
    one = 1 << ((u << 2) & 28)
    word = u >> 3
    l0, h0 = _count_word(u, word, one, 0)
    l1, h1 = _count_word(u, word, one, 1)
    l2, h2 = _count_word(u, word, one, 2)
    l3, h3 = _count_word(u, word, one, 3)
    rows: tl.constexpr = l0.shape[0]
    # Words l0 (bins 0, 2, 4, 6), h0 (bins 1, 3, 5, 7), l1 (8, 10, 12, 14), ... h3 (HISTOGRAM_BINS).
    # Each join appends an axis: element [r, a, b, c] is half c (low, high) of word w = 2 a + b, so
    # the reshape puts half c of word w at position 2 w + c (its bytes then at 8 w + 4 c + byte).
    words = tl.join(tl.join(tl.join(l0, l2), tl.join(l1, l3)), tl.join(tl.join(h0, h2), tl.join(h1, h3)))
    words = tl.reshape(words, (rows, 8))
    # Bytes by joins (which stay in the thread): element [r, w, i, j] is byte 2 i + j of word w.
    b0 = words & 0xFF
    b1 = (words >> 8) & 0xFF
    b2 = (words >> 16) & 0xFF
    b3 = (words >> 24) & 0xFF
    hist = tl.join(tl.join(b0, b2), tl.join(b1, b3))
    return tl.reshape(hist, (rows, _NUM_UCODES)).to(tl.int8)


@triton.jit
def _or(a, b):
    return a | b


@triton.jit
def _popc(x, USE_PTX: tl.constexpr):
    """Population count of int32 words (the GPU's popc; a SWAR count under the interpreter)."""
    if USE_PTX:
        return tl.inline_asm_elementwise("popc.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1)
    else:
        v = x.to(tl.uint32, bitcast=True)
        v = v - ((v >> 1) & 0x55555555)
        v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
        v = (v + (v >> 4)) & 0x0F0F0F0F
        return ((v * 0x01010101) >> 24).to(tl.int32)


@triton.jit
def _bit_plane(words, position, BIT: tl.constexpr):
    """Bit BIT of every value of a block as one 32-bit mask: the value in byte l of word j at bit
    8 l + j (any fixed placement serves: only the counts of ANDs of planes are used).

    ``words`` (PIECES, R, VEC / 4) hold four values of at most 5 bits each, one per byte;
    ``position`` is each word's index j < 8 in the block.
    """
    up = tl.maximum(position - BIT, 0)
    down = tl.maximum(BIT - position, 0)
    moved = tl.where(position >= BIT, words << up, words >> down)
    picked = moved & (0x01010101 << position)
    return tl.reduce(tl.reduce(picked, 2, _or), 0, _or)


@triton.jit
def _bit_planes(u):
    """The 5 bit planes of (PIECES, R, VEC) values u < 32, PIECES * VEC <= 32: one int32 mask each
    per row, a bit per value (value 4 q + b of piece p at bit 8 b + p VEC / 4 + q)."""
    PIECES: tl.constexpr = u.shape[0]
    ROWS: tl.constexpr = u.shape[1]
    VEC: tl.constexpr = u.shape[2]
    tl.static_assert(PIECES * VEC <= 32, "a plane holds 32 values")
    # Four values per word, one per byte.
    quads = tl.reshape(u, (PIECES, ROWS, VEC // 4, 2, 2))
    pair_0, pair_1 = tl.split(quads)
    v0, v2 = tl.split(pair_0)
    v1, v3 = tl.split(pair_1)
    words = v0 | (v1 << 8) | (v2 << 16) | (v3 << 24)
    position = tl.arange(0, PIECES)[:, None, None] * (VEC // 4) + tl.arange(0, VEC // 4)[None, None, :]
    return (_bit_plane(words, position, 0), _bit_plane(words, position, 1), _bit_plane(words, position, 2),
            _bit_plane(words, position, 3), _bit_plane(words, position, 4))


@triton.jit
def _subset_counts(u, BLOCK: tl.constexpr, USE_PTX: tl.constexpr):
    """(R, 32) int8: for every subset s of the 5 bits of u, how many values of each row's block have
    all the bits of s set (s = 0: all of them). With the Moebius transform W of ERR
    (``ERR[d][u] = sum of W[d][s] over the subsets s of u's bits``), ``cost = counts @ W^T`` is the
    LUT cost exactly. Each count is a popc of an AND of bit planes (two planes per bit for blocks
    of 64): no per-bin work per value.
    """
    PIECES: tl.constexpr = u.shape[0]
    ROWS: tl.constexpr = u.shape[1]
    VEC: tl.constexpr = u.shape[2]
    if PIECES * VEC > 32:
        tl.static_assert(PIECES * VEC == 64, "blocks of at most 64 values")
        halves = tl.permute(tl.reshape(u, (2, PIECES // 2, ROWS, VEC)), (1, 2, 3, 0))
        u_lo, u_hi = tl.split(halves)
        p0, p1, p2, p3, p4 = _bit_planes(u_lo)
    else:
        p0, p1, p2, p3, p4 = _bit_planes(u)
    m1 = p0
    m2 = p1
    m3 = m1 & p1
    m4 = p2
    m5 = m1 & p2
    m6 = m2 & p2
    m7 = m3 & p2
    m8 = p3
    m9 = m1 & p3
    m10 = m2 & p3
    m11 = m3 & p3
    m12 = m4 & p3
    m13 = m5 & p3
    m14 = m6 & p3
    m15 = m7 & p3
    m16 = p4
    m17 = m1 & p4
    m18 = m2 & p4
    m19 = m3 & p4
    m20 = m4 & p4
    m21 = m5 & p4
    m22 = m6 & p4
    m23 = m7 & p4
    m24 = m8 & p4
    m25 = m9 & p4
    m26 = m10 & p4
    m27 = m11 & p4
    m28 = m12 & p4
    m29 = m13 & p4
    m30 = m14 & p4
    m31 = m15 & p4
    c1 = _popc(m1, USE_PTX)
    c2 = _popc(m2, USE_PTX)
    c3 = _popc(m3, USE_PTX)
    c4 = _popc(m4, USE_PTX)
    c5 = _popc(m5, USE_PTX)
    c6 = _popc(m6, USE_PTX)
    c7 = _popc(m7, USE_PTX)
    c8 = _popc(m8, USE_PTX)
    c9 = _popc(m9, USE_PTX)
    c10 = _popc(m10, USE_PTX)
    c11 = _popc(m11, USE_PTX)
    c12 = _popc(m12, USE_PTX)
    c13 = _popc(m13, USE_PTX)
    c14 = _popc(m14, USE_PTX)
    c15 = _popc(m15, USE_PTX)
    c16 = _popc(m16, USE_PTX)
    c17 = _popc(m17, USE_PTX)
    c18 = _popc(m18, USE_PTX)
    c19 = _popc(m19, USE_PTX)
    c20 = _popc(m20, USE_PTX)
    c21 = _popc(m21, USE_PTX)
    c22 = _popc(m22, USE_PTX)
    c23 = _popc(m23, USE_PTX)
    c24 = _popc(m24, USE_PTX)
    c25 = _popc(m25, USE_PTX)
    c26 = _popc(m26, USE_PTX)
    c27 = _popc(m27, USE_PTX)
    c28 = _popc(m28, USE_PTX)
    c29 = _popc(m29, USE_PTX)
    c30 = _popc(m30, USE_PTX)
    c31 = _popc(m31, USE_PTX)
    if PIECES * VEC > 32:
        q0, q1, q2, q3, q4 = _bit_planes(u_hi)
        n1 = q0
        n2 = q1
        n3 = n1 & q1
        n4 = q2
        n5 = n1 & q2
        n6 = n2 & q2
        n7 = n3 & q2
        n8 = q3
        n9 = n1 & q3
        n10 = n2 & q3
        n11 = n3 & q3
        n12 = n4 & q3
        n13 = n5 & q3
        n14 = n6 & q3
        n15 = n7 & q3
        n16 = q4
        n17 = n1 & q4
        n18 = n2 & q4
        n19 = n3 & q4
        n20 = n4 & q4
        n21 = n5 & q4
        n22 = n6 & q4
        n23 = n7 & q4
        n24 = n8 & q4
        n25 = n9 & q4
        n26 = n10 & q4
        n27 = n11 & q4
        n28 = n12 & q4
        n29 = n13 & q4
        n30 = n14 & q4
        n31 = n15 & q4
        c1 += _popc(n1, USE_PTX)
        c2 += _popc(n2, USE_PTX)
        c3 += _popc(n3, USE_PTX)
        c4 += _popc(n4, USE_PTX)
        c5 += _popc(n5, USE_PTX)
        c6 += _popc(n6, USE_PTX)
        c7 += _popc(n7, USE_PTX)
        c8 += _popc(n8, USE_PTX)
        c9 += _popc(n9, USE_PTX)
        c10 += _popc(n10, USE_PTX)
        c11 += _popc(n11, USE_PTX)
        c12 += _popc(n12, USE_PTX)
        c13 += _popc(n13, USE_PTX)
        c14 += _popc(n14, USE_PTX)
        c15 += _popc(n15, USE_PTX)
        c16 += _popc(n16, USE_PTX)
        c17 += _popc(n17, USE_PTX)
        c18 += _popc(n18, USE_PTX)
        c19 += _popc(n19, USE_PTX)
        c20 += _popc(n20, USE_PTX)
        c21 += _popc(n21, USE_PTX)
        c22 += _popc(n22, USE_PTX)
        c23 += _popc(n23, USE_PTX)
        c24 += _popc(n24, USE_PTX)
        c25 += _popc(n25, USE_PTX)
        c26 += _popc(n26, USE_PTX)
        c27 += _popc(n27, USE_PTX)
        c28 += _popc(n28, USE_PTX)
        c29 += _popc(n29, USE_PTX)
        c30 += _popc(n30, USE_PTX)
        c31 += _popc(n31, USE_PTX)
    c0 = tl.zeros_like(c1) + BLOCK
    l1_0 = tl.join(c0, c16)
    l1_1 = tl.join(c1, c17)
    l1_2 = tl.join(c2, c18)
    l1_3 = tl.join(c3, c19)
    l1_4 = tl.join(c4, c20)
    l1_5 = tl.join(c5, c21)
    l1_6 = tl.join(c6, c22)
    l1_7 = tl.join(c7, c23)
    l1_8 = tl.join(c8, c24)
    l1_9 = tl.join(c9, c25)
    l1_10 = tl.join(c10, c26)
    l1_11 = tl.join(c11, c27)
    l1_12 = tl.join(c12, c28)
    l1_13 = tl.join(c13, c29)
    l1_14 = tl.join(c14, c30)
    l1_15 = tl.join(c15, c31)
    l2_0 = tl.join(l1_0, l1_8)
    l2_1 = tl.join(l1_1, l1_9)
    l2_2 = tl.join(l1_2, l1_10)
    l2_3 = tl.join(l1_3, l1_11)
    l2_4 = tl.join(l1_4, l1_12)
    l2_5 = tl.join(l1_5, l1_13)
    l2_6 = tl.join(l1_6, l1_14)
    l2_7 = tl.join(l1_7, l1_15)
    l3_0 = tl.join(l2_0, l2_4)
    l3_1 = tl.join(l2_1, l2_5)
    l3_2 = tl.join(l2_2, l2_6)
    l3_3 = tl.join(l2_3, l2_7)
    l4_0 = tl.join(l3_0, l3_2)
    l4_1 = tl.join(l3_1, l3_3)
    counts = tl.join(l4_0, l4_1)  # element [r, a, b, c, d, e]: subset 16 a + 8 b + 4 c + 2 d + e
    return tl.reshape(counts, (ROWS, _NUM_UCODES)).to(tl.int8)


@triton.jit
def _range_count(u, lo, hi):
    """Values of each row's block with lo <= u < hi (bounds per row, broadcast over pieces and lanes)."""
    inside = (u >= lo[None, :, None]) & (u < hi[None, :, None])
    return tl.sum(tl.sum(inside.to(tl.int32), axis=2), axis=0)


@triton.jit
def _power_of_two(exponent):
    """2^exponent as binary32, for -126 <= exponent <= 127 (built on the bit pattern)."""
    return ((exponent + _FLOAT32_BIAS) << _MANTISSA_BITS).to(tl.float32, bitcast=True)


@triton.jit
def _quantize_rows_kernel(
    x_ptr, stride_x,
    codes_ptr, stride_codes,
    exponent_ptr, dialect_ptr, stride_meta,
    mask_ptr, stride_mask_row, stride_mask_block,
    err_ptr, idx_ptr, ranges_ptr, mx_round_ptr,
    num_rows,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    VEC: tl.constexpr,
    NUM_DIALECTS: tl.constexpr,
    DIALECTS_PAD: tl.constexpr,
    RULE: tl.constexpr,
    HAS_MASK: tl.constexpr,
    PAIR_TOP: tl.constexpr,
    NUM_PAIRS: tl.constexpr,
    SUBSETS: tl.constexpr = False,
    USE_PTX: tl.constexpr = False,
    tensor_amax_ptr=None, tensor_scale_ptr=None,
    E4M3: tl.constexpr = False,
    NUM_U: tl.constexpr = 32,
    GRID_SHIFT: tl.constexpr = 1,
    TOP: tl.constexpr = 7.5,
):  # fmt: skip
    """Quantize ``ROWS`` rows x one block: x (M, K) float -> codes (M, K/2), exponent/dialect (M, K/B).

    The block is loaded as ``(BLOCK / VEC, ROWS, VEC)``: pieces of VEC contiguous values (one
    16-byte vector), rows across the threads, so that a thread holds whole blocks of its rows and
    every reduction over a block (maximum, histogram, range counts) stays inside the thread.

    E4M3 (dialect formats with an E4M3 block scale, NUMERICS 8.3): ``exponent_ptr`` receives the
    block scale bytes, program (0, 0) stores the tensor scale ``t`` (computed by every program from
    the tensor maximum at ``tensor_amax_ptr``), and the codes u (``NUM_U`` of them, 32 or 64 on the
    quarter grid) come from ``fl32(|x| r) 2^(GRID_SHIFT + 1)``.
    """
    tl.static_assert(BLOCK % 2 == 0, "blocks hold whole bytes of packed codes")
    tl.static_assert(VEC % 2 == 0 and BLOCK % VEC == 0 and VEC < 16, "a block is whole pieces of VEC < 16 values")
    tl.static_assert(
        RULE == _RULE_LUT or RULE == _RULE_TWO_STAGE or RULE == _RULE_MXFP4, "RULE is an ActivationRule"
    )
    tl.static_assert(not HAS_MASK or RULE == _RULE_LUT, "a candidate mask needs LUT selection")
    PIECES: tl.constexpr = BLOCK // VEC
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    block = tl.program_id(1)
    row_ok = rows < num_rows
    rows64 = rows.to(tl.int64)
    piece = tl.arange(0, PIECES)[:, None, None]
    lane = tl.arange(0, VEC)[None, None, :]
    column = tl.max_contiguous(tl.multiple_of(block * BLOCK + piece * VEC + lane, [1, 1, VEC]), [1, 1, VEC])
    x = tl.load(x_ptr + rows64[None, :, None] * stride_x + column, mask=row_ok[None, :, None], other=0.0)
    x = x.to(tl.float32)
    bits = x.to(tl.int32, bitcast=True)

    # Shared exponent from the exponent field of the block maximum (positive floats order as ints;
    # a NaN or an infinity gives field 255, which the wrapper's finite check looks for).
    magnitude_bits = bits & 0x7FFFFFFF
    amax = tl.max(tl.max(magnitude_bits, axis=2), axis=0)
    if E4M3:
        tl.static_assert(RULE == _RULE_LUT, "E4M3-scaled formats use LUT selection")
        scale_byte, u = _e4m3_front_end(magnitude_bits, amax, tensor_amax_ptr, tensor_scale_ptr, NUM_U, GRID_SHIFT,
                                        TOP)  # fmt: skip
        whole = u
        e = scale_byte
    else:
        e, u, whole, product = _e8m0_front_end(magnitude_bits, amax)
    if RULE == _RULE_MXFP4:
        exact = whole.to(tl.float32) == product
        index = tl.load(mx_round_ptr + exact.to(tl.int32) * _NUM_UCODES + u)
    else:
        if RULE == _RULE_LUT:
            # cost = N @ T^T as two exact int8 dots (T = 128 T_hi + T_lo): N the (ROWS, 32) subset
            # counts and T the Moebius coefficients of ERR (SUBSETS), or N the counts of each u
            # (the histogram) and T = ERR with its columns in HISTOGRAM_BINS order. 64 codes u
            # (quarter grid): one histogram of u < 32 and one of u - 32 (each counts only its own
            # 32 bins), and their dots against columns 0..31 and 32..63 of T.
            tl.static_assert(ROWS >= 16, "the LUT cost is a tl.dot: at least 16 rows per program")
            tl.static_assert(DIALECTS_PAD <= _MAX_DIALECTS_PAD, "the minimum's key cost * D' + id must fit int32")
            bins = tl.arange(0, _NUM_UCODES)
            d = tl.arange(0, DIALECTS_PAD)
            if SUBSETS:  # err_ptr holds the split Moebius coefficients of ERR (tables.subset_split)
                hist = _subset_counts(u, BLOCK, USE_PTX)
            else:
                hist = _histogram(u)
            cost = _cost_dot(hist, err_ptr, d, bins, 0, NUM_U, DIALECTS_PAD)
            if NUM_U == 2 * _NUM_UCODES:
                cost += _cost_dot(_histogram(u - _NUM_UCODES), err_ptr, d, bins, _NUM_UCODES, NUM_U, DIALECTS_PAD)
            else:
                tl.static_assert(NUM_U == _NUM_UCODES, "32 or 64 codes u")
            valid = (d < NUM_DIALECTS)[None, :]
            if HAS_MASK:
                mask_row = mask_ptr + rows64 * stride_mask_row + block * stride_mask_block
                allowed = tl.load(mask_row[:, None] + d[None, :], mask=row_ok[:, None] & valid, other=1)
                valid = valid & (allowed != 0)
            # First minimum (ties to the lowest id) as one minimum of cost * DIALECTS_PAD + id.
            key = tl.where(valid, cost, _NO_CANDIDATE) * DIALECTS_PAD + d[None, :]
            dialect = tl.min(key, axis=1) & (DIALECTS_PAD - 1)
        else:
            # The block's largest u is that of its maximum (u is monotone in |x|).
            first = (2 - e) >> 1
            umax = tl.minimum((amax.to(tl.float32, bitcast=True) * _power_of_two(first)) * _power_of_two(2 - e - first), 31.0).to(tl.int32)
            pair = PAIR_TOP - tl.minimum(tl.maximum(umax >> 1, PAIR_TOP - NUM_PAIRS + 1), PAIR_TOP)
            bounds = ranges_ptr + pair * 4  # [A lo, A hi, B lo, B hi]
            count_a = _range_count(u, tl.load(bounds), tl.load(bounds + 1))
            count_b = _range_count(u, tl.load(bounds + 2), tl.load(bounds + 3))
            dialect = 2 * pair + (count_b > count_a).to(tl.int32)
            dialect = tl.where(umax == 0, 0, dialect)
        index = tl.load(idx_ptr + dialect[None, :, None] * NUM_U + u)
        tl.store(dialect_ptr + rows64 * stride_meta + block, dialect.to(tl.uint8), mask=row_ok)

    code = ((bits >> (_FLOAT_SIGN_BIT - _SIGN_SHIFT)) & _CODE_SIGN) | index
    code_even, code_odd = tl.split(tl.reshape(code, (PIECES, ROWS, VEC // 2, 2)))
    packed = (code_even | (code_odd << 4)).to(tl.uint8)
    byte = tl.arange(0, VEC // 2)[None, None, :]
    codes_column = block * (BLOCK // 2) + piece * (VEC // 2) + byte
    tl.store(codes_ptr + rows64[None, :, None] * stride_codes + codes_column, packed, mask=row_ok[None, :, None])
    if E4M3:
        tl.store(exponent_ptr + rows64 * stride_meta + block, e.to(tl.uint8), mask=row_ok)
    else:
        tl.store(exponent_ptr + rows64 * stride_meta + block, (e + _EXP_BIAS).to(tl.uint8), mask=row_ok)


@triton.jit
def _cost_dot(hist, err_ptr, d, bins, FIRST: tl.constexpr, NUM_U: tl.constexpr, DIALECTS_PAD: tl.constexpr):
    """The LUT cost of bins FIRST .. FIRST + 31: hist (R, 32) int8 against the split table's columns."""
    column = FIRST + bins[:, None]
    err_lo = tl.load(err_ptr + d[None, :] * NUM_U + column)  # (32, DIALECTS_PAD)
    err_hi = tl.load(err_ptr + (DIALECTS_PAD + d[None, :]) * NUM_U + column)
    return tl.dot(hist, err_hi, out_dtype=tl.int32) * _ERR_SPLIT + tl.dot(hist, err_lo, out_dtype=tl.int32)


@triton.jit
def _e8m0_front_end(magnitude_bits, amax):
    """(e, u, whole, product) of the E8M0 front-end (NUMERICS 2.1 steps 1-2), half grid."""
    e = tl.maximum((amax >> _MANTISSA_BITS) - _FIELD_TO_E, -_EXP_BIAS)
    # u = floor(|x| 2^(2 - e)) as two exact multiplies by powers of two (2 - e reaches 129, beyond
    # binary32's largest power): every value with u >= 1 stays normal or exactly scaled up on the
    # way, and one whose product is below 1 gets u = 0 however it rounds (NUMERICS 2.1; docs in
    # kernels/README.md). The product is below 32; the unsigned minimum only guards NaN/inf blocks.
    first = (2 - e) >> 1
    scale_1 = _power_of_two(first)[None, :, None]
    scale_2 = _power_of_two(2 - e - first)[None, :, None]
    product = (magnitude_bits.to(tl.float32, bitcast=True) * scale_1) * scale_2
    whole = product.to(tl.int32)
    u = tl.minimum(whole.to(tl.uint32, bitcast=True), _U_MAX).to(tl.int32, bitcast=True)
    return e, u, whole, product


@triton.jit
def _e4m3_front_end(magnitude_bits, amax, tensor_amax_ptr, tensor_scale_ptr, NUM_U: tl.constexpr,
                    GRID_SHIFT: tl.constexpr, TOP: tl.constexpr):  # fmt: skip
    """(E4M3 block scale bytes, u) of NUMERICS 8.3, every division correctly rounded (div_rn).

    t = max(fl32(amax_tensor / fl32(448 TOP)), 2^-120) (0 for an all-zero tensor: bytes 0, u 0);
    s = E4M3(clamp(fl32(fl32(amax_block / TOP) / t), 2^-6, 448)) rounded to nearest even on the
    bit pattern (a normal float32 in [2^-6, 448] keeps 3 of its 23 fraction bits);
    r = fl32(fl32(1 / t) / s);  u = min(NUM_U - 1, floor(fl32(|x| r) 2^(GRID_SHIFT + 1))).
    """
    tensor_amax = tl.load(tensor_amax_ptr)
    t = tl.maximum(tl.math.div_rn(tensor_amax, _E4M3_MAX * TOP), _MIN_TENSOR_SCALE)
    zero_tensor = tensor_amax == 0.0
    t = tl.where(zero_tensor, 0.0, t)
    if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
        tl.store(tensor_scale_ptr, t)
    t_safe = tl.where(zero_tensor, 1.0, t)
    amax_f = amax.to(tl.float32, bitcast=True)
    ratio = tl.math.div_rn(tl.math.div_rn(amax_f, tl.full(amax_f.shape, TOP, tl.float32)), t_safe)
    ratio = tl.minimum(tl.maximum(ratio, _E4M3_MIN_NORMAL), _E4M3_MAX)
    ratio_bits = ratio.to(tl.int32, bitcast=True)
    rounded = (ratio_bits + _E4M3_HALF_ULP + ((ratio_bits >> _E4M3_DROPPED_BITS) & 1)) >> _E4M3_DROPPED_BITS
    scale_byte = rounded - _E4M3_REBIAS  # E4M3 bits: (exponent + 7) << 3 | 3 fraction bits
    scale = ((scale_byte + _E4M3_REBIAS) << _E4M3_DROPPED_BITS).to(tl.float32, bitcast=True)
    r = tl.math.div_rn(tl.math.div_rn(tl.full(scale.shape, 1.0, tl.float32), t_safe), scale)
    product = (magnitude_bits.to(tl.float32, bitcast=True) * r[None, :, None]) * (2.0 ** (GRID_SHIFT + 1))
    u = tl.minimum(product, NUM_U - 1).to(tl.int32)
    u = tl.where(zero_tensor, 0, u)
    scale_byte = tl.where(zero_tensor, 0, scale_byte)
    return scale_byte, u


#: Bytes of one vector load: a thread reads its rows' blocks in pieces of this many bytes.
VECTOR_BYTES = 16


def vector_width(dtype: torch.dtype, block: int) -> int:
    """Values of ``dtype`` per vector load piece of a block (16 bytes, at most the block)."""
    return min(block, VECTOR_BYTES // torch.empty(0, dtype=dtype).element_size())


def uses_subset_counts(rule: ActivationRule, block: int, tables) -> bool:
    """Whether the LUT cost comes from subset counts (a Moebius transform of ERR that splits into
    int8: every shipped formatbook) rather than the nibble histogram."""
    return rule is ActivationRule.LUT and tables.subset_split is not None


def _prepare(x, format, block, select, candidate_mask, validate=True):
    """Validate the public arguments; returns (spec, rule, block, x2d, mask3d or None)."""
    spec = kernel_format(format)
    block = spec.check_block(block)
    rule = activation_rule(spec, select)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"activations must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in KERNEL_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in KERNEL_DTYPES)
        raise InputError(f"the kernels take {names} activations, got {str(x.dtype).removeprefix('torch.')}")
    if x.dim() == 0 or x.shape[-1] == 0 or x.shape[-1] % block:
        raise InputError(
            f"activations of shape {tuple(x.shape)} need a non-empty last axis "
            f"divisible by the block size {block}"
        )
    x2d = x.detach().reshape(-1, x.shape[-1])
    if x2d.stride(1) != 1:  # the kernel reads each row's elements contiguously
        x2d = x2d.contiguous()
    nblocks = x2d.shape[1] // block
    mask = None
    if candidate_mask is not None:
        mask = _prepare_mask(candidate_mask, spec, rule, x.shape[:-1], nblocks, validate).to(x2d.device)
    return spec, rule, block, x2d, mask


def _check_finite(x: torch.Tensor, exponent: torch.Tensor) -> None:
    """Raise InputError naming the first block (of ``x``'s shape) that holds a NaN or an infinity.

    The kernel itself flags such blocks with ``NONFINITE_EXPONENT_BYTE``: this reads only the
    exponent bytes, and ``x`` only on the error path.
    """
    bad = exponent == NONFINITE_EXPONENT_BYTE
    if not bool(bad.any()):
        return
    flat = int(bad.reshape(-1).nonzero()[0])
    nblocks = exponent.shape[-1]
    row, block = divmod(flat, nblocks)
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(row), x.shape[:-1])) + (block,)
    values = x.reshape(-1, x.shape[-1])[row].unflatten(-1, (nblocks, -1))[block]
    kind = "a NaN" if bool(torch.isnan(values).any()) else "an infinity"
    raise InputError(f"block {index} contains {kind}; the quantizer needs finite values")


def _check_finite_values(x: torch.Tensor, x2d: torch.Tensor, block: int, tensor_amax: torch.Tensor) -> None:
    """E4M3 formats: raise InputError naming the first block holding a NaN or an infinity (the
    tensor maximum is read on the host; the values only on the error path)."""
    if x2d.shape[0] == 0 or bool(torch.isfinite(tensor_amax)):
        return
    finite_blocks = torch.isfinite(x2d.reshape(x2d.shape[0], -1, block)).all(-1)
    exponent = torch.where(finite_blocks, 0, NONFINITE_EXPONENT_BYTE).to(torch.uint8)
    _check_finite(x, exponent)


def _prepare_mask(mask, spec: FormatSpec, rule: ActivationRule, lead, nblocks, validate=True) -> torch.Tensor:
    if rule is not ActivationRule.LUT:
        raise FormatError(f"a candidate mask needs LUT selection, which format {spec.name!r} does not use")
    dialects = spec.formatbook.num_dialects
    if validate:  # also checks that every block keeps a candidate: reads the mask on the host
        full = check_candidate_mask(mask, (*lead, nblocks), spec.formatbook)
    else:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape[-1:] != (dialects,):
            raise FormatError(f"candidate mask must be a boolean tensor with last axis {dialects} ({spec.formatbook.name})")
        full = torch.broadcast_to(mask, (*lead, nblocks, dialects))
    return full.reshape(-1, nblocks, dialects)


def quantize_activations(
    x: torch.Tensor,
    format: str | FormatSpec,
    *,
    block: int | None = None,
    select: Selection | str | None = None,
    candidate_mask: torch.Tensor | None = None,
    config: QuantizeConfig = QuantizeConfig(),
    validate: bool = True,
) -> PackedOperand:
    """Quantize activation rows with the format's activation rule, on the GPU.

    Args:
        x: float16/bfloat16/float32 ``(..., K)``, finite, K divisible by ``block``; a CUDA tensor
            (any device under ``TRITON_INTERPRET=1``).
        format: ``"fb32"`` (LUT selection), ``"dialectfp4"`` (two-stage selection), ``"mxfp4"``, or
            another registry dialect format (a formatbook: half grid with E8M0, or either grid with
            an E4M3 block scale, whose float32 tensor scale comes from the maximum over all of ``x``).
        block: block size (default the format's).
        select: dialect selection, LUT or two-stage (dialectfp4 only); default the format's.
        candidate_mask: optional boolean mask broadcastable to ``(..., K // block, D)`` restricting
            each block's LUT selection (SeDA); LUT formats only.
        config: rows per program and warps.
        validate: raise on blocks holding a NaN or an infinity, and on a mask that leaves a block
            without candidates. Both read device values on the host (a synchronisation); the
            linear's hot path turns them off unless asked (``kernels.launch.validation_default``).

    Returns:
        ``PackedOperand`` with ``prod(x.shape[:-1])`` rows, bit-identical to ``golden.quantize``.
    """
    spec, rule, block, x2d, mask = _prepare(x, format, block, select, candidate_mask, validate)
    check_runnable("activations", x2d)
    rows, length = x2d.shape
    nblocks = length // block
    device = x2d.device
    tables = format_tables(spec.name, device)
    e4m3 = spec.scale is Scale.E4M3
    codes = torch.empty(rows, length // 2, dtype=torch.uint8, device=device)
    exponent = torch.empty(rows, nblocks, dtype=torch.uint8, device=device)  # E4M3: the block scale bytes
    tensor_scale = tensor_amax = None
    if e4m3:  # the tensor maximum (a reduction over every row, before the kernel); t comes from the kernel
        tensor_scale = torch.zeros((), dtype=torch.float32, device=device)
        tensor_amax = tensor_scale
        if rows:  # max |x| = max(max x, -min x): one pass, no |x| temporary (NaN and inf propagate)
            low, high = torch.aminmax(x2d)
            tensor_amax = torch.maximum(high, -low).to(torch.float32)
    dialect = torch.empty(rows, nblocks, dtype=torch.uint8, device=device) if spec.is_dialect else exponent
    if mask is None:
        mask_arg, mask_strides = tables.idx, (0, 0)  # never read (HAS_MASK is off)
    else:
        mask_arg = mask.view(torch.uint8)
        mask_strides = (mask_arg.stride(0), mask_arg.stride(1))
        if mask_arg.stride(2) != 1:
            mask_arg = mask_arg.contiguous()
            mask_strides = (mask_arg.stride(0), mask_arg.stride(1))
    if rows:
        rows_per_program = config.rows_for(block, tables.num_ucodes)
        subsets = uses_subset_counts(rule, block, tables)
        grid = (triton.cdiv(rows, rows_per_program), nblocks)
        _quantize_rows_kernel[grid](
            x_ptr=x2d, stride_x=x2d.stride(0),
            codes_ptr=codes, stride_codes=codes.stride(0),
            exponent_ptr=exponent, dialect_ptr=dialect, stride_meta=exponent.stride(0),
            mask_ptr=mask_arg, stride_mask_row=mask_strides[0], stride_mask_block=mask_strides[1],
            err_ptr=tables.subset_split if subsets else tables.err_split, idx_ptr=tables.idx, ranges_ptr=tables.two_stage, mx_round_ptr=tables.mx_round,
            num_rows=rows,
            BLOCK=block, ROWS=rows_per_program, VEC=vector_width(x2d.dtype, block), NUM_DIALECTS=tables.num_dialects, DIALECTS_PAD=tables.err_split.shape[1], RULE=int(rule),
            HAS_MASK=mask is not None, PAIR_TOP=tables.pair_top, NUM_PAIRS=tables.num_pairs,
            SUBSETS=subsets, USE_PTX=not interpreting(),
            tensor_amax_ptr=tensor_amax, tensor_scale_ptr=tensor_scale,
            E4M3=e4m3, NUM_U=tables.num_ucodes, GRID_SHIFT=tables.grid_shift, TOP=tables.grid_top,
            num_warps=config.num_warps, **LAUNCH_OPTIONS,
        )  # fmt: skip
    if validate:
        if e4m3:
            _check_finite_values(x, x2d, block, tensor_amax)
        else:
            _check_finite(x, exponent)
    return PackedOperand(
        format=spec.name,
        block=block,
        codes=codes,
        exponent=None if e4m3 else exponent,
        dialect=dialect if spec.is_dialect else None,
        block_scale=exponent if e4m3 else None,
        tensor_scale=tensor_scale,
    )


def quantize_activations_torch(
    x: torch.Tensor,
    format: str | FormatSpec,
    *,
    block: int | None = None,
    select: Selection | str | None = None,
    candidate_mask: torch.Tensor | None = None,
    config: QuantizeConfig = QuantizeConfig(),
    validate: bool = True,
) -> PackedOperand:
    """Pure-PyTorch twin of ``quantize_activations``: the same integer algorithm, any device.

    ``config`` is accepted for signature parity and ignored.
    """
    spec, rule, block, x2d, mask = _prepare(x, format, block, select, candidate_mask, validate)
    rows, length = x2d.shape
    tables = format_tables(spec.name, x2d.device)
    bits = x2d.to(torch.float32).contiguous().view(torch.int32).reshape(rows, -1, block)
    magnitude = bits & 0x7FFFFFFF
    e = ((magnitude.amax(-1) >> FLOAT32_MANTISSA_BITS) - (FLOAT32_BIAS + 2)).clamp_min(-EXPONENT_BIAS)
    field = magnitude >> FLOAT32_MANTISSA_BITS
    significand = (magnitude & ((1 << FLOAT32_MANTISSA_BITS) - 1)) | (
        (field > 0).to(torch.int32) << FLOAT32_MANTISSA_BITS
    )
    shift = (FLOAT32_BIAS + FLOAT32_MANTISSA_BITS - 2 + e[..., None] - field.clamp_min(1)).clamp_max(31)
    whole = significand >> shift
    exact = (whole << shift) == significand
    u = whole.clamp_max(NUM_UCODES - 1).long()
    e4m3 = spec.scale is Scale.E4M3
    tensor_scale = None
    if e4m3:
        if validate:  # before the front end: a non-finite tensor maximum makes every block's u NaN
            _check_finite(x, e + EXPONENT_BIAS)
        scale_byte, u, tensor_scale = _e4m3_front_end_torch(bits, tables)
    dialect = None
    if rule is ActivationRule.MXFP4:
        index = tables.mx_round[exact.long(), u]
    else:
        if rule is ActivationRule.LUT:
            cost = tables.err.T[u].sum(-2)  # (rows, nblocks, D)
            if mask is not None:
                cost = cost.masked_fill(~mask, torch.iinfo(cost.dtype).max)
            dialect = cost.argmin(-1)  # first minimum: ties to the lowest id
        else:
            umax = u.amax(-1)
            top, low = tables.pair_top, tables.pair_top - tables.num_pairs + 1
            pair = top - (umax >> 1).clamp(low, top)
            bounds = tables.two_stage.reshape(-1, 4).long()[pair]  # (rows, nblocks, 4)
            inside = (u[..., None] >= bounds[..., None, 0::2]) & (u[..., None] < bounds[..., None, 1::2])
            count = inside.sum(-2)  # (rows, nblocks, 2): A, B
            dialect = torch.where(umax == 0, 0, 2 * pair + (count[..., 1] > count[..., 0]).long())
        index = torch.gather(tables.idx.long()[dialect], -1, u)
    sign = (bits >> 31) & 1
    codes = ((sign << (CODE_BITS - 1)) | index).to(torch.uint8).reshape(rows, length)
    if validate:
        _check_finite(x, e + EXPONENT_BIAS)
    return PackedOperand(
        format=spec.name,
        block=block,
        codes=(codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous(),
        exponent=None if e4m3 else (e + EXPONENT_BIAS).to(torch.uint8),
        dialect=None if dialect is None else dialect.to(torch.uint8),
        block_scale=scale_byte.to(torch.uint8) if e4m3 else None,
        tensor_scale=tensor_scale,
    )


def _e4m3_front_end_torch(bits: torch.Tensor, tables) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Twin of ``_e4m3_front_end``: (scale bytes (R, nblocks), u (R, nblocks, B), t) from the
    binary32 patterns ``bits`` (R, nblocks, B), with the same float32 steps and E4M3 rounding."""
    magnitude = (bits & 0x7FFFFFFF).view(torch.float32)
    device = bits.device
    tensor_amax = magnitude.amax() if magnitude.numel() else torch.zeros((), device=device)
    zero_tensor = tensor_amax == 0
    divisor = torch.tensor(E4M3_MAX * tables.grid_top, dtype=torch.float32, device=device)
    t = torch.where(zero_tensor, 0.0, torch.clamp_min(tensor_amax / divisor, E4M3_DIALECT_MIN_TENSOR_SCALE))
    t_safe = torch.where(zero_tensor, 1.0, t)
    top = torch.tensor(tables.grid_top, dtype=torch.float32, device=device)
    ratio = ((magnitude.amax(-1) / top) / t_safe).clamp(E4M3_MIN_NORMAL, E4M3_MAX)
    ratio_bits = ratio.view(torch.int32)
    dropped = FLOAT32_MANTISSA_BITS - E4M3_FRACTION_BITS
    rebias = (FLOAT32_BIAS - E4M3_BIAS) << E4M3_FRACTION_BITS
    rounded = (ratio_bits + ((1 << (dropped - 1)) - 1) + ((ratio_bits >> dropped) & 1)) >> dropped
    scale_byte = rounded - rebias
    scale = ((scale_byte + rebias) << dropped).view(torch.float32)
    r = (torch.ones((), device=device) / t_safe) / scale
    product = (magnitude * r[..., None]) * 2.0 ** (tables.grid_shift + 1)
    u = product.nan_to_num(0.0).clamp(max=tables.num_ucodes - 1).long()  # NaN: only unvalidated non-finite input
    u = torch.where(zero_tensor, 0, u)
    return torch.where(zero_tensor, 0, scale_byte), u, t.to(torch.float32).reshape(())
