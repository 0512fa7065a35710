"""The W4A4 GEMM ``y = A @ W.T`` on packed operands, and its scatter-add variant for residual rows.

Each code decodes to a signed half-unit magnitude ``|h| <= 15``, which fits int8, so a K range of
blocks is one exact int8 ``tl.dot`` into int32. Decoding reads one 32-bit word per row and block
(the block's dialect, eight 4-bit magnitudes; ``FormatTables.words``) and extracts every element's
magnitude with a shift, so no per-element table lookups reach memory.

*Exact* mode (``GemmMode.EXACT``) is NUMERICS.md section 4 bit for bit: one dot per block pair,
``term = fl32(acc * 2^(e_a + e_w - 2))`` and ``y = fl32(y + term)`` in increasing K order from
+0.0. The term is ``(acc * 2^(e_a - 1)) * 2^(e_w - 1)`` with per-row and per-column powers: the
first product is exact, the second is the single IEEE rounding the contract asks for (subnormal and
infinite results included); a tile whose activation exponents could overflow the first product
takes a general per-element split instead (``_outer_scale``). Launches disable FMA contraction
(see ``launch.py``).

*Fast* mode (``GemmMode.FAST``) merges the blocks of a K tile of ``GemmConfig.fast_tile_k`` values
into one dot: inside the tile, every row of A (and of W) is aligned to its largest block exponent
``r`` on a grid ``2^ALIGN_BITS`` finer than a half unit, ``h' = round(h * 2^(ALIGN_BITS - (r - e)))``
(ties up), which is exact whenever ``r - e <= ALIGN_BITS`` and otherwise errs by at most half a grid
step, ``2^(r - 2 - ALIGN_BITS)`` in real units. One term per
tile is then scaled and accumulated. ``fast_mode_error_bound`` states the resulting bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from golden.blocks import InputError
from golden.formats import EXPONENT_BIAS, MAX_HALF_UNITS, FormatError, Scale

from .launch import LAUNCH_OPTIONS, check_runnable
from .packed import PackedOperand
from .tables import (
    ALIGN_BITS,
    FLOAT32_BIAS,
    FLOAT32_MANTISSA_BITS,
    MAGNITUDE_BITS,
    NUM_CODES,
    format_tables,
    require_half_e8m0,
)

__all__ = [
    "AUTOTUNE_CONFIGS",
    "DEFAULT_CONFIGS",
    "PER_BLOCK_CONFIG",
    "GemmConfig",
    "GemmMode",
    "fast_mode_error_bound",
    "w4a4_gemm",
    "w4a4_gemm_scatter_add",
    "w4a4_gemm_scatter_add_torch",
    "w4a4_gemm_torch",
    "tuned_config",
]


class GemmMode(enum.Enum):
    EXACT = "exact"  # NUMERICS.md section 4, bit-identical to golden.quantized_matmul
    FAST = "fast"  # blocks of a K tile merged into one dot; bounded error (fast_mode_error_bound)


#: The smallest K of an int8 tl.dot the compiler accepts; smaller dots are zero-padded to it.
MIN_DOT_K = 32
#: 2^-24, the unit roundoff of binary32 round-to-nearest.
UNIT_ROUNDOFF = 2.0 ** -(FLOAT32_MANTISSA_BITS + 1)

_SIGN_BIT = tl.constexpr(NUM_CODES >> 1)
_INDEX_MASK = tl.constexpr((NUM_CODES >> 1) - 1)
_MAGNITUDE_BITS = tl.constexpr(MAGNITUDE_BITS)
_MAGNITUDE_MASK = tl.constexpr((1 << MAGNITUDE_BITS) - 1)
_ALIGN_BITS = tl.constexpr(ALIGN_BITS)
#: Largest shift _align needs: |h| 2^ALIGN_BITS < 2^7, so a shift of 8 already rounds every value to 0.
_MAX_ALIGN_SHIFT = tl.constexpr(8)
#: term = acc * 2^(E_a - _HALF_OFFSET) * 2^(E_w - _HALF_OFFSET) for biased exponent bytes E: the
#: value of a half unit is 2^(e - 1) = 2^(E - 128). Fast mode also undoes the alignment grid.
_HALF_OFFSET = tl.constexpr(EXPONENT_BIAS + 1)
_FAST_HALF_OFFSET = tl.constexpr(EXPONENT_BIAS + 1 + ALIGN_BITS)
_FLOAT_BIAS = tl.constexpr(FLOAT32_BIAS)
_MANTISSA_BITS = tl.constexpr(FLOAT32_MANTISSA_BITS)
#: Smallest normal and smallest subnormal binary32 exponents (-126, -149).
_MIN_NORMAL_EXP = tl.constexpr(1 - FLOAT32_BIAS)
_MIN_SUBNORMAL_EXP = tl.constexpr(1 - FLOAT32_BIAS - FLOAT32_MANTISSA_BITS)
#: Every int32 dot result the kernel scales has |acc| < 2^MAX_ACC_BITS (exact in binary32) ...
MAX_ACC_BITS = 22
#: ... so acc * 2^s1 is an exact, finite normal number for s1 in [-126, _S1_MAX].
_S1_MAX = tl.constexpr(FLOAT32_BIAS - MAX_ACC_BITS - 1)


@dataclass(frozen=True)
class GemmConfig:
    """Tile shape of the GEMM kernels.

    ``block_m`` x ``block_n`` outputs per program (each >= 16, powers of two); ``fast_tile_k``
    values of K merged per fast-mode dot (a power of two, a multiple of the block size in use).
    ``DEFAULT_CONFIGS`` holds the production configuration of each mode.
    """

    block_m: int = 64
    block_n: int = 64
    fast_tile_k: int = 128
    num_warps: int = 4
    num_stages: int = 3
    #: Row tiles launched next to each other per column tile (grouped launch order, L2 reuse).
    group_m: int = 8

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "fast_tile_k"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise InputError(f"GemmConfig.{name} must be a power of two of at least 16, got {value}")
        if self.fast_tile_k * (MAX_HALF_UNITS << ALIGN_BITS) ** 2 >= 1 << MAX_ACC_BITS:
            raise InputError(
                f"GemmConfig.fast_tile_k={self.fast_tile_k} is too large: "
                f"tile sums would reach 2^{MAX_ACC_BITS}"
            )

    def tile_blocks(self, mode: GemmMode, block: int) -> int:
        """Blocks merged into one dot: 1 in exact mode, fast_tile_k // block in fast mode."""
        if mode is GemmMode.EXACT:
            return 1
        if self.fast_tile_k < MIN_DOT_K:
            raise InputError(f"GemmConfig.fast_tile_k={self.fast_tile_k} is below the int8 dot's K of {MIN_DOT_K}")
        if self.fast_tile_k % block:
            raise InputError(
                f"GemmConfig.fast_tile_k={self.fast_tile_k} is not a multiple of the block size {block}"
            )
        return self.fast_tile_k // block


#: The production configuration of each mode. Exact mode: 64 x 64 tiles (its per-block scaling keeps
#: an int32 and a float32 tile live next to the decode). Fast mode: 128 x 128 tiles, two warp groups
#: (64 accumulator rows each), three pipeline stages, K tiles of 256 (the largest whose int32 sums
#: stay below 2^22; it halves the per-tile rescale against 128, see kernels/README.md).
DEFAULT_CONFIGS = {
    GemmMode.EXACT: GemmConfig(block_m=128, block_n=128, num_warps=8, num_stages=3),
    GemmMode.FAST: GemmConfig(block_m=128, block_n=128, fast_tile_k=256, num_warps=8, num_stages=3),
}
#: The per-block exact kernel (blocks of 16, scatter-add): its production tiles.
PER_BLOCK_CONFIG = GemmConfig()
#: A small autotuning set per mode, the production configuration first: deeper pipelines, a
#: 64-row tile (one warp group) and, for fast mode, K tiles of 128. ``tuned_config`` times them on
#: the GPU; ``python -m kernels.aot`` compiles every one (no spills, main-loop budget).
AUTOTUNE_CONFIGS = {
    GemmMode.FAST: (
        DEFAULT_CONFIGS[GemmMode.FAST],
        GemmConfig(block_m=128, block_n=128, fast_tile_k=256, num_warps=8, num_stages=4),
        GemmConfig(block_m=64, block_n=128, fast_tile_k=128, num_warps=4, num_stages=4),
        GemmConfig(block_m=128, block_n=128, fast_tile_k=128, num_warps=8, num_stages=4),
    ),
    GemmMode.EXACT: (
        DEFAULT_CONFIGS[GemmMode.EXACT],
        GemmConfig(block_m=128, block_n=128, num_warps=8, num_stages=4),
        GemmConfig(block_m=64, block_n=128, num_warps=4, num_stages=4),
    ),
}
#: Fastest configuration per (mode, format, block, M rounded up to a power of two, N, K, dtype).
_TUNED: dict[tuple, GemmConfig] = {}
#: Output dtypes of the GEMM epilogue.
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# --------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------


@triton.jit
def _pow2(k):
    """2^k as binary32 for integer ``k`` in [-149, 127] (subnormal powers included)."""
    normal = ((k + _FLOAT_BIAS) << _MANTISSA_BITS).to(tl.float32, bitcast=True)
    subnormal_bit = tl.minimum(tl.maximum(k - _MIN_SUBNORMAL_EXP, 0), _MANTISSA_BITS - 1)
    subnormal = (1 << subnormal_bit).to(tl.float32, bitcast=True)
    return tl.where(k >= _MIN_NORMAL_EXP, normal, subnormal)


@triton.jit
def _scale(acc, s):
    """fl32(acc * 2^s) with one rounding, for int32 ``|acc| < 2^MAX_ACC_BITS`` and ``s`` in [-276, 276].

    ``acc * 2^s1`` is exact; ``s2`` only clamps where the result is 0 or infinite either way.
    """
    s1 = tl.minimum(tl.maximum(s, _MIN_NORMAL_EXP), _S1_MAX)
    s2 = tl.minimum(tl.maximum(s - s1, _MIN_SUBNORMAL_EXP), _FLOAT_BIAS)
    return (acc.to(tl.float32) * _pow2(s1)) * _pow2(s2)


@triton.jit
def _outer_scale(acc, s_rows, s_cols):
    """fl32(acc * 2^(s_rows[:, None] + s_cols[None, :])) with one rounding, per output element.

    Common case: no row exponent above _S1_MAX, so ``acc * 2^s_row`` is exact (a multiple of the
    smallest subnormal, below 2^127) and ``* 2^s_col`` is the single rounding: two multiplies
    per element. Otherwise the general per-element split of ``_scale``.
    """
    if tl.max(s_rows, axis=0) <= _S1_MAX:
        term = (acc.to(tl.float32) * _pow2(s_rows)[:, None]) * _pow2(s_cols)[None, :]
    else:
        term = _scale(acc, s_rows[:, None] + s_cols[None, :])
    return term


@triton.jit
def _decode(nibble, word):
    """Signed half units of 4-bit codes, given each code's dialect word (8 magnitudes of 4 bits)."""
    magnitude = (word >> ((nibble & _INDEX_MASK) * _MAGNITUDE_BITS)) & _MAGNITUDE_MASK
    return tl.where((nibble & _SIGN_BIT) != 0, -magnitude, magnitude)


@triton.jit
def _per_byte(values, TILE_BLOCKS: tl.constexpr, BLOCK: tl.constexpr):
    """(R, TILE_BLOCKS) per-block values -> (R, TILE_BLOCKS * BLOCK / 2), one per packed byte."""
    repeated = tl.broadcast_to(values[:, :, None], (values.shape[0], TILE_BLOCKS, BLOCK // 2))
    return tl.reshape(repeated, (values.shape[0], TILE_BLOCKS * BLOCK // 2))


@triton.jit
def _load_tile(codes_ptr, exponent_ptr, dialect_ptr, stride_codes, stride_meta, words_ptr,
               rows64, row_ok, tile, num_blocks,
               TILE_BLOCKS: tl.constexpr, BLOCK: tl.constexpr, HAS_DIALECT: tl.constexpr):  # fmt: skip
    """One K tile of R rows: signed half units of the even and odd elements, int32 (R, TILE_BYTES)
    each, and the biased block exponents, int32 (R, TILE_BLOCKS) (0 past K or past the last row)."""
    TILE_BYTES: tl.constexpr = TILE_BLOCKS * BLOCK // 2
    blocks = tile * TILE_BLOCKS + tl.arange(0, TILE_BLOCKS)
    block_ok = row_ok[:, None] & (blocks[None, :] < num_blocks)
    meta = rows64[:, None] * stride_meta + blocks[None, :]
    exponent = tl.load(exponent_ptr + meta, mask=block_ok, other=0).to(tl.int32)
    if HAS_DIALECT:
        word = tl.load(words_ptr + tl.load(dialect_ptr + meta, mask=block_ok, other=0).to(tl.int32))
    else:
        word = tl.load(words_ptr + tl.zeros_like(exponent))
    word = _per_byte(word, TILE_BLOCKS, BLOCK)
    byte = tile * TILE_BYTES + tl.arange(0, TILE_BYTES)
    ok = row_ok[:, None] & (byte[None, :] < num_blocks * (BLOCK // 2))
    packed = tl.load(codes_ptr + rows64[:, None] * stride_codes + byte[None, :], mask=ok, other=0)
    packed = packed.to(tl.int32)
    return _decode(packed & 0xF, word), _decode(packed >> 4, word), exponent


@triton.jit
def _align(value, shift):
    """round(value * 2^(ALIGN_BITS - shift)), ties up: exact for shift <= ALIGN_BITS, else within 1/2."""
    shift = tl.minimum(shift, _MAX_ALIGN_SHIFT)
    return ((value << _ALIGN_BITS) + ((1 << shift) >> 1)) >> shift


@triton.jit
def _dot_operand(even, odd, PAD: tl.constexpr):
    """Interleave even/odd elements back into K order as int8; PAD = 2 zero-pads a 16-wide K to 32."""
    values = tl.join(even, odd)
    values = tl.reshape(values, (values.shape[0], 2 * values.shape[1])).to(tl.int8)
    if PAD == 2:
        values = tl.join(values, tl.zeros_like(values))
        values = tl.reshape(values, (values.shape[0], 2 * values.shape[1]))
    return values


@triton.jit
def _to_out(y, dtype: tl.constexpr):
    """float32 -> the output dtype with round-to-nearest-even (as torch's .to()).

    bfloat16 is rounded on the bit pattern: the interpreter's own float32 -> bfloat16 cast
    truncates, and the integer form costs the GPU three more instructions per output, once.
    """
    if dtype == tl.bfloat16:
        bits = y.to(tl.int32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        half = tl.where(y != y, 0x7FC0, rounded & 0xFFFF).to(tl.int16)
        return half.to(tl.bfloat16, bitcast=True)
    else:
        return y.to(dtype)


@triton.jit
def _epilogue(y, rows, cols, row_ok, col_ok, bias_ptr, residual_ptr, stride_residual, slot_ptr,
              HAS_BIAS: tl.constexpr, HAS_RESIDUAL: tl.constexpr):  # fmt: skip
    """y + residual[slot[row]] (rows with a slot) + bias, each a float32 addition in that order."""
    if HAS_RESIDUAL:
        slot = tl.load(slot_ptr + rows, mask=row_ok, other=-1)
        r_mask = row_ok[:, None] & col_ok[None, :] & (slot >= 0)[:, None]
        r = tl.load(residual_ptr + slot.to(tl.int64)[:, None] * stride_residual + cols[None, :], mask=r_mask,
                    other=0.0)  # fmt: skip
        y = tl.where(r_mask, y + r, y)
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + cols, mask=col_ok, other=0.0)[None, :]
    return y


@triton.jit
def _w4a4_gemm_kernel(
    a_codes_ptr, a_exponent_ptr, a_dialect_ptr, stride_a_codes, stride_a_meta,
    w_codes_ptr, w_exponent_ptr, w_dialect_ptr, stride_w_codes, stride_w_meta,
    words_ptr, out_ptr, stride_out, out_rows_ptr,
    bias_ptr, residual_ptr, stride_residual, slot_ptr,
    num_rows, num_cols, num_blocks,
    BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PAD: tl.constexpr,
    HAS_DIALECT: tl.constexpr,
    SCATTER: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
):  # fmt: skip
    """Exact mode: one (BLOCK_M, BLOCK_N) tile of y = A @ W.T, one dot per K block.

    SCATTER adds the tile into out[out_rows] instead; otherwise the epilogue adds the optional
    residual rows and bias and stores in out's dtype.
    """
    tl.static_assert(BLOCK * DOT_PAD >= 32, "an int8 tl.dot needs K >= 32")
    tl.static_assert(DOT_PAD == 1 or DOT_PAD == 2, "only a 16-wide dot is padded")
    tl.static_assert(BLOCK_M >= 16 and BLOCK_N >= 16, "tl.dot tiles are at least 16 x 16")
    tl.static_assert(not (SCATTER and (HAS_BIAS or HAS_RESIDUAL)), "scatter-add has no epilogue")
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < num_rows
    col_ok = cols < num_cols
    rows64 = rows.to(tl.int64)
    cols64 = cols.to(tl.int64)
    y = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for block in range(0, num_blocks):
        a_even, a_odd, e_a = _load_tile(a_codes_ptr, a_exponent_ptr, a_dialect_ptr,
                                        stride_a_codes, stride_a_meta, words_ptr, rows64, row_ok, block,
                                        num_blocks, 1, BLOCK, HAS_DIALECT)  # fmt: skip
        w_even, w_odd, e_w = _load_tile(w_codes_ptr, w_exponent_ptr, w_dialect_ptr,
                                        stride_w_codes, stride_w_meta, words_ptr, cols64, col_ok, block,
                                        num_blocks, 1, BLOCK, HAS_DIALECT)  # fmt: skip
        a = _dot_operand(a_even, a_odd, DOT_PAD)
        w = _dot_operand(w_even, w_odd, DOT_PAD)
        acc = tl.dot(a, tl.trans(w), out_dtype=tl.int32)
        y = y + _outer_scale(acc, tl.max(e_a, axis=1) - _HALF_OFFSET, tl.max(e_w, axis=1) - _HALF_OFFSET)
    out_mask = row_ok[:, None] & col_ok[None, :]
    if SCATTER:
        target = tl.load(out_rows_ptr + rows, mask=row_ok, other=0)
        out = out_ptr + target[:, None] * stride_out + cols64[None, :]
        y = tl.load(out, mask=out_mask, other=0.0) + y
    else:
        y = _epilogue(y, rows, cols64, row_ok, col_ok, bias_ptr, residual_ptr, stride_residual, slot_ptr,
                      HAS_BIAS, HAS_RESIDUAL)  # fmt: skip
        out = out_ptr + rows64[:, None] * stride_out + cols64[None, :]
    tl.store(out, _to_out(y, out_ptr.dtype.element_ty), mask=out_mask)


#: E4M3 scale bytes (NUMERICS 8.3): 3 fraction bits, exponent bias 7; a normal byte's binary32
#: pattern is (byte + _E4M3_REBIAS) << _E4M3_SHIFT, a subnormal one is (byte & 7) * 2^-9.
_E4M3_SHIFT = tl.constexpr(FLOAT32_MANTISSA_BITS - 3)
_E4M3_REBIAS = tl.constexpr((FLOAT32_BIAS - 7) << 3)
_E4M3_SUBNORMAL_STEP = tl.constexpr(2.0**-9)


@triton.jit
def _e4m3_value(byte):
    """float32 value of E4M3 (fn) scale bytes (positive: the quantizer's scales have no sign)."""
    normal = ((byte + _E4M3_REBIAS) << _E4M3_SHIFT).to(tl.float32, bitcast=True)
    return tl.where(byte >= 8, normal, (byte & 7).to(tl.float32) * _E4M3_SUBNORMAL_STEP)


@triton.jit
def _load_block_units(codes_ptr, dialect_ptr, byte_words_ptr, stride_codes, stride_meta, rows64, row_ok, block,
                      BLOCK: tl.constexpr):  # fmt: skip
    """One K block of R rows as int8 (R, BLOCK) signed grid units, in K order (0 past the last row).

    Each row's dialect gives two words (``FormatTables.byte_words``: magnitudes 0..3 and 4..7, a
    byte each, so quarter-grid magnitudes up to 31 fit); a code's magnitude is a shift of one of them.
    """
    dialect = tl.load(dialect_ptr + rows64 * stride_meta + block, mask=row_ok, other=0).to(tl.int32)
    low_word = tl.load(byte_words_ptr + 2 * dialect)[:, None]
    high_word = tl.load(byte_words_ptr + 2 * dialect + 1)[:, None]
    byte = block * (BLOCK // 2) + tl.arange(0, BLOCK // 2)
    packed = tl.load(codes_ptr + rows64[:, None] * stride_codes + byte[None, :], mask=row_ok[:, None], other=0)
    packed = packed.to(tl.int32)
    codes = tl.reshape(tl.join(packed & 0xF, packed >> 4), (packed.shape[0], BLOCK))
    index = codes & _INDEX_MASK
    word = tl.where(index >= 4, high_word, low_word)
    magnitude = (word >> ((index & 3) * 8)) & 0xFF
    return tl.where((codes & _SIGN_BIT) != 0, -magnitude, magnitude).to(tl.int8)


@triton.jit
def _w4a4_gemm_e4m3_kernel(
    a_codes_ptr, a_scale_ptr, a_dialect_ptr, stride_a_codes, stride_a_meta, a_tensor_scale_ptr,
    w_codes_ptr, w_scale_ptr, w_dialect_ptr, stride_w_codes, stride_w_meta, w_tensor_scale_ptr,
    byte_words_ptr, out_ptr, stride_out, bias_ptr, residual_ptr, stride_residual, slot_ptr,
    num_rows, num_cols, num_blocks,
    BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PAD: tl.constexpr,
    GRID_SHIFT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
):  # fmt: skip
    """Exact mode for E4M3-scaled dialect formats (NUMERICS 8.4), one dot per K block, in K order:
    ``term = fl32(fl32(acc 2^-2g fl32(s_a s_w)) fl32(t_a t_w))``, ``y = fl32(y + term)`` from +0.0.
    ``acc 2^-2g s_a s_w`` is exact (|acc| < 2^16, scales of 4 significant bits each), so the
    product with ``fl32(t_a t_w)`` is the term's one rounding.
    """
    tl.static_assert(BLOCK * DOT_PAD >= 32, "an int8 tl.dot needs K >= 32")
    tl.static_assert(BLOCK_M >= 16 and BLOCK_N >= 16, "tl.dot tiles are at least 16 x 16")
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < num_rows
    col_ok = cols < num_cols
    rows64 = rows.to(tl.int64)
    cols64 = cols.to(tl.int64)
    tensor_scale = tl.load(a_tensor_scale_ptr) * tl.load(w_tensor_scale_ptr)
    y = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for block in range(0, num_blocks):
        a = _load_block_units(a_codes_ptr, a_dialect_ptr, byte_words_ptr, stride_a_codes, stride_a_meta, rows64,
                              row_ok, block, BLOCK)  # fmt: skip
        w = _load_block_units(w_codes_ptr, w_dialect_ptr, byte_words_ptr, stride_w_codes, stride_w_meta, cols64,
                              col_ok, block, BLOCK)  # fmt: skip
        if DOT_PAD == 2:
            a = tl.reshape(tl.join(a, tl.zeros_like(a)), (BLOCK_M, 2 * BLOCK))
            w = tl.reshape(tl.join(w, tl.zeros_like(w)), (BLOCK_N, 2 * BLOCK))
        acc = tl.dot(a, tl.trans(w), out_dtype=tl.int32)
        s_a = _e4m3_value(tl.load(a_scale_ptr + rows64 * stride_a_meta + block, mask=row_ok, other=0).to(tl.int32))
        s_w = _e4m3_value(tl.load(w_scale_ptr + cols64 * stride_w_meta + block, mask=col_ok, other=0).to(tl.int32))
        scale = s_a[:, None] * s_w[None, :]
        y = y + ((acc.to(tl.float32) * (2.0 ** (-2 * GRID_SHIFT))) * scale) * tensor_scale
    out_mask = row_ok[:, None] & col_ok[None, :]
    y = _epilogue(y, rows, cols64, row_ok, col_ok, bias_ptr, residual_ptr, stride_residual, slot_ptr,
                  HAS_BIAS, HAS_RESIDUAL)  # fmt: skip
    out = out_ptr + rows64[:, None] * stride_out + cols64[None, :]
    tl.store(out, _to_out(y, out_ptr.dtype.element_ty), mask=out_mask)


# --------------------------------------------------------------------------------------------
# Public wrappers
# --------------------------------------------------------------------------------------------


def _check_operands(a: PackedOperand, w: PackedOperand, mode) -> GemmMode:
    for name, operand in (("activation", a), ("weight", w)):
        if not isinstance(operand, PackedOperand):
            raise InputError(f"the {name} operand must be a PackedOperand, got {type(operand).__name__}")
    if a.format != w.format or a.block != w.block:
        raise FormatError(
            f"GEMM operands must share format and block; got {a.format}/{a.block} and {w.format}/{w.block}"
        )
    if a.length != w.length:
        raise InputError(f"reduction lengths differ: activation K={a.length}, weight K={w.length}")
    if a.device != w.device:
        raise InputError(f"the activation is on {a.device} but the weight is on {w.device}")
    try:
        return GemmMode(mode)
    except ValueError:
        raise InputError(
            f"unknown GEMM mode {mode!r}; expected one of {', '.join(m.value for m in GemmMode)}"
        ) from None


def _check_scatter(a: PackedOperand, w: PackedOperand, out: torch.Tensor, rows: torch.Tensor) -> None:
    if (
        not isinstance(out, torch.Tensor)
        or out.dtype != torch.float32
        or out.dim() != 2
        or out.shape[1] != w.rows
    ):
        raise InputError(
            f"out must be a float32 (M, {w.rows}) tensor, got {getattr(out, 'dtype', type(out).__name__)} "
            f"of shape {tuple(getattr(out, 'shape', ()))}"
        )
    if out.stride(1) != 1 or out.device != a.device:
        raise InputError(f"out must be row-contiguous and on {a.device}")
    if not isinstance(rows, torch.Tensor) or rows.dtype != torch.int64 or rows.shape != (a.rows,):
        raise InputError(
            f"rows must be int64 of shape ({a.rows},), one output row per activation row, got "
            f"{getattr(rows, 'dtype', type(rows).__name__)} of shape {tuple(getattr(rows, 'shape', ()))}"
        )
    if rows.device != a.device:
        raise InputError(f"rows are on {rows.device} but the activations are on {a.device}")
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= out.shape[0]):
        raise InputError(
            f"row indices must lie in [0, {out.shape[0]}), got {int(rows.min())}..{int(rows.max())}"
        )
    if rows.unique().numel() != rows.numel():
        raise InputError("row indices must be unique (each output row receives one residual)")


def _resolve_config(mode: GemmMode, config: GemmConfig | None, block: int) -> GemmConfig:
    config = DEFAULT_CONFIGS[mode] if config is None else config
    if not isinstance(config, GemmConfig):
        raise InputError(f"config must be a GemmConfig, got {type(config).__name__}")
    config.tile_blocks(mode, block)  # checks fast_tile_k against the block size
    return config


def _check_epilogue(w: PackedOperand, bias, out_dtype) -> None:
    if out_dtype not in OUT_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in OUT_DTYPES)
        raise InputError(f"the GEMM writes {names}, not {out_dtype}")
    if bias is not None and (
        not isinstance(bias, torch.Tensor) or bias.dtype != torch.float32 or bias.shape != (w.rows,)
        or bias.device != w.device or not bias.is_contiguous()
    ):  # fmt: skip
        raise InputError(
            f"bias must be a contiguous float32 tensor of shape ({w.rows},) on {w.device}, got "
            f"{getattr(bias, 'dtype', type(bias).__name__)} of shape {tuple(getattr(bias, 'shape', ()))}"
        )


def gemm_into(a, w, mode: GemmMode, config: GemmConfig, out, *, bias=None, residual=None, slot=None) -> None:
    """Launch the GEMM of ``mode`` into ``out`` (M, N) with the fused epilogue; arguments checked.

    ``residual`` float32 (S, N) and ``slot`` int32 (M,) (-1 for rows without a residual) add
    ``residual[slot[i]]`` to row ``i`` before the bias.
    """
    if a.rows == 0 or w.rows == 0:
        return
    if a.spec.scale is Scale.E4M3:
        if mode is GemmMode.FAST:
            require_half_e8m0(a.spec, "fast mode")
        _launch_exact_e4m3(a, w, per_block_config(config), out, bias, residual, slot)
        return
    if mode is GemmMode.FAST or a.block >= MIN_DOT_K:
        from .fast import fast_weight, launch_fast, prepare_activations

        # Exact mode on the fast kernel: one block per K tile, where the alignment is exact.
        tile_k = config.fast_tile_k if mode is GemmMode.FAST else a.block
        a_fast = prepare_activations(a, tile_k, config.block_m)
        w_fast = fast_weight(w, tile_k, config.block_n)
        launch_fast(a_fast, w_fast, config, out, bias, residual, slot, exact=mode is GemmMode.EXACT)
        return
    _launch_exact(a, w, per_block_config(config), out, None, False, bias, residual, slot)


def per_block_config(config: GemmConfig) -> GemmConfig:
    """The per-block exact kernel's tiles (blocks of 16, scatter-add): at most 64 x 64 with 4 warps
    (it keeps the decode of both operands, an int32 and a float32 tile live at once)."""
    if config.block_m <= PER_BLOCK_CONFIG.block_m and config.block_n <= PER_BLOCK_CONFIG.block_n:
        return config
    return PER_BLOCK_CONFIG


def _launch_exact_e4m3(a, w, config, out, bias, residual=None, slot=None):
    tables = format_tables(a.format, a.device)
    grid = (triton.cdiv(a.rows, config.block_m), triton.cdiv(w.rows, config.block_n))
    _w4a4_gemm_e4m3_kernel[grid](
        a_codes_ptr=a.codes, a_scale_ptr=a.block_scale, a_dialect_ptr=a.dialect,
        stride_a_codes=a.codes.stride(0), stride_a_meta=a.block_scale.stride(0), a_tensor_scale_ptr=a.tensor_scale,
        w_codes_ptr=w.codes, w_scale_ptr=w.block_scale, w_dialect_ptr=w.dialect,
        stride_w_codes=w.codes.stride(0), stride_w_meta=w.block_scale.stride(0), w_tensor_scale_ptr=w.tensor_scale,
        byte_words_ptr=tables.byte_words, out_ptr=out, stride_out=out.stride(0),
        bias_ptr=out if bias is None else bias, residual_ptr=out if residual is None else residual,
        stride_residual=0 if residual is None else residual.stride(0),
        slot_ptr=a.block_scale if slot is None else slot,
        num_rows=a.rows, num_cols=w.rows, num_blocks=a.num_blocks,
        BLOCK=a.block, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
        DOT_PAD=max(1, MIN_DOT_K // a.block), GRID_SHIFT=tables.grid_shift, HAS_BIAS=bias is not None,
        HAS_RESIDUAL=residual is not None,
        num_warps=config.num_warps, num_stages=config.num_stages, **LAUNCH_OPTIONS,
    )  # fmt: skip


def _launch_exact(a, w, config, out, out_rows, scatter, bias=None, residual=None, slot=None):
    tables = format_tables(a.format, a.device)
    grid = (triton.cdiv(a.rows, config.block_m), triton.cdiv(w.rows, config.block_n))
    _w4a4_gemm_kernel[grid](
        a_codes_ptr=a.codes, a_exponent_ptr=a.exponent,
        a_dialect_ptr=a.exponent if a.dialect is None else a.dialect,
        stride_a_codes=a.codes.stride(0), stride_a_meta=a.exponent.stride(0),
        w_codes_ptr=w.codes, w_exponent_ptr=w.exponent,
        w_dialect_ptr=w.exponent if w.dialect is None else w.dialect,
        stride_w_codes=w.codes.stride(0), stride_w_meta=w.exponent.stride(0),
        words_ptr=tables.words, out_ptr=out, stride_out=out.stride(0),
        out_rows_ptr=out_rows if scatter else a.exponent,
        bias_ptr=out if bias is None else bias, residual_ptr=out if residual is None else residual,
        stride_residual=0 if residual is None else residual.stride(0),
        slot_ptr=a.exponent if slot is None else slot,
        num_rows=a.rows, num_cols=w.rows, num_blocks=a.num_blocks,
        BLOCK=a.block, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
        DOT_PAD=max(1, MIN_DOT_K // a.block), HAS_DIALECT=a.dialect is not None, SCATTER=scatter,
        HAS_BIAS=bias is not None, HAS_RESIDUAL=residual is not None,
        num_warps=config.num_warps, num_stages=config.num_stages, **LAUNCH_OPTIONS,
    )  # fmt: skip


def w4a4_gemm(
    a: PackedOperand,
    w: PackedOperand,
    *,
    mode: GemmMode | str = GemmMode.EXACT,
    config: GemmConfig | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``y = A @ W.T (+ bias)`` for packed A ``(M, K)`` and W ``(N, K)``: ``(M, N)`` in ``out_dtype``.

    Exact mode is bit-identical to ``golden.quantized_matmul``; fast mode stays within
    ``fast_mode_error_bound``. The optional float32 ``bias`` ``(N,)`` is added in float32 and the
    sum rounded once to ``out_dtype`` (float32, bfloat16 or float16). ``config`` defaults to the
    mode's production configuration (``DEFAULT_CONFIGS``). Both operands on one CUDA device (any
    device when interpreting).
    """
    mode = _check_operands(a, w, mode)
    config = _resolve_config(mode, config, a.block)
    _check_epilogue(w, bias, out_dtype)
    check_runnable("the activation codes", a.codes)
    out = torch.empty(a.rows, w.rows, dtype=out_dtype, device=a.device)
    gemm_into(a, w, mode, config, out, bias=bias)
    return out


def tuned_config(a: PackedOperand, w: PackedOperand, mode: GemmMode | str = GemmMode.EXACT, *,
                 out_dtype: torch.dtype = torch.bfloat16) -> GemmConfig:  # fmt: skip
    """The fastest of ``AUTOTUNE_CONFIGS[mode]`` for this shape, timed once on the GPU and cached.

    Timing launches every candidate (compiling it the first time) and synchronises with the GPU,
    so call it ahead of the hot path (or of a CUDA-graph capture). Without a GPU (the interpreter)
    it returns the production configuration untimed.
    """
    mode = _check_operands(a, w, mode)
    if a.codes.device.type != "cuda":
        return DEFAULT_CONFIGS[mode]
    key = (mode, a.format, a.block, 1 << max(a.rows - 1, 0).bit_length(), w.rows, a.length, out_dtype)
    if key not in _TUNED:
        from triton.testing import do_bench

        out = torch.empty(a.rows, w.rows, dtype=out_dtype, device=a.device)
        candidates = [c for c in AUTOTUNE_CONFIGS[mode] if mode is GemmMode.EXACT or c.fast_tile_k % a.block == 0]
        times = [do_bench(lambda c=c: gemm_into(a, w, mode, c, out)) for c in candidates]
        _TUNED[key] = candidates[times.index(min(times))]
    return _TUNED[key]


def w4a4_gemm_scatter_add(
    a: PackedOperand,
    w: PackedOperand,
    out: torch.Tensor,
    rows: torch.Tensor,
    *,
    mode: GemmMode | str = GemmMode.EXACT,
    config: GemmConfig | None = None,
) -> None:
    """``out[rows[i]] = fl32(out[rows[i]] + (A @ W.T)[i])`` in place: the residual-row GEMM.

    ``a`` holds one packed row per entry of ``rows`` (int64, unique, in range: checked here, which
    reads ``rows`` on the host); ``out`` is float32 ``(M, N)``. The product is computed exactly as
    ``w4a4_gemm`` would, then added once. ``w4a4_linear`` fuses this step into the GEMM epilogue.
    """
    mode = _check_operands(a, w, mode)
    config = _resolve_config(mode, config, a.block)
    _check_scatter(a, w, out, rows)
    check_runnable("the activation codes", a.codes)
    require_half_e8m0(a.spec, "the scatter-add GEMM")
    if a.rows == 0 or w.rows == 0:
        return
    if mode is GemmMode.FAST:
        y = torch.empty(a.rows, w.rows, dtype=torch.float32, device=a.device)
        gemm_into(a, w, mode, config, y)
        out[rows] = out[rows] + y
        return
    _launch_exact(a, w, per_block_config(config), out, rows, True)


# --------------------------------------------------------------------------------------------
# Pure-PyTorch twins
# --------------------------------------------------------------------------------------------


def _signed_half_units(p: PackedOperand) -> torch.Tensor:
    """int64 (R, K) signed grid units (half units; quarter units on the quarter grid), decoded
    through the (unpacked) decode table."""
    tables = format_tables(p.format, p.device)
    codes = torch.stack((p.codes & 0xF, p.codes >> 4), dim=-1).flatten(-2).long()  # (R, K)
    if p.dialect is None:
        dialect = torch.zeros(p.rows, p.num_blocks, dtype=torch.long, device=p.device)
    else:
        dialect = p.dialect.long()
    dialect = dialect.repeat_interleave(p.block, dim=1)
    return tables.decode.long()[dialect, codes]


def _round_to_binary32(acc: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """fl32(acc * 2^exponent) with one rounding: the product is exact in float64."""
    return (acc.to(torch.float64) * torch.pow(2.0, exponent.to(torch.float64))).to(torch.float32)


def _aligned(h: torch.Tensor, e: torch.Tensor, tile_blocks: int, block: int):
    """Fast-mode tile operands: (values (R, T, tile), reference biased exponents (R, T))."""
    rows, k = h.shape
    tile = tile_blocks * block
    tiles = -(-k // tile)
    pad = tiles * tile - k
    h = torch.nn.functional.pad(h, (0, pad)).reshape(rows, tiles, tile)
    e = torch.nn.functional.pad(e.long(), (0, pad // block)).reshape(rows, tiles, tile_blocks)
    ref = e.amax(-1)
    shift = (ref[..., None] - e).clamp(max=8).repeat_interleave(block, dim=-1)
    return ((h << ALIGN_BITS) + ((1 << shift) >> 1)) >> shift, ref


def epilogue_torch(y, bias, residual, slot, out_dtype):
    """Twin of the fused epilogue: y + residual[slot] (rows with slot >= 0) + bias, then out_dtype."""
    if residual is not None:
        has = slot >= 0
        y = y.clone()
        y[has] = y[has] + residual[slot[has].long()]
    if bias is not None:
        y = y + bias
    return y.to(out_dtype)


def _gemm_torch(a: PackedOperand, w: PackedOperand, mode: GemmMode, config: GemmConfig) -> torch.Tensor:
    ha, hw = _signed_half_units(a), _signed_half_units(w)
    y = torch.zeros(a.rows, w.rows, dtype=torch.float32, device=a.device)
    if a.spec.scale is Scale.E4M3:
        if mode is GemmMode.FAST:
            require_half_e8m0(a.spec, "fast mode")
        tables = format_tables(a.format, a.device)
        s_a = a.block_scale.view(torch.float8_e4m3fn).to(torch.float32)
        s_w = w.block_scale.view(torch.float8_e4m3fn).to(torch.float32)
        tensor_scale = a.tensor_scale * w.tensor_scale
        for b in range(a.num_blocks):
            span = slice(b * a.block, (b + 1) * a.block)
            acc = (ha[:, span] @ hw[:, span].T).to(torch.float32)  # exact: |acc| < 2^16
            scale = s_a[:, b, None] * s_w[None, :, b]
            y = y + ((acc * 2.0 ** (-2 * tables.grid_shift)) * scale) * tensor_scale
        return y
    if mode is GemmMode.EXACT:
        ea, ew = a.exponent.long(), w.exponent.long()
        for b in range(a.num_blocks):
            span = slice(b * a.block, (b + 1) * a.block)
            acc = ha[:, span] @ hw[:, span].T
            y = y + _round_to_binary32(acc, ea[:, b, None] + ew[None, :, b] - (2 * EXPONENT_BIAS + 2))
        return y
    tile_blocks = config.tile_blocks(mode, a.block)
    va, ref_a = _aligned(ha, a.exponent, tile_blocks, a.block)
    vw, ref_w = _aligned(hw, w.exponent, tile_blocks, a.block)
    for t in range(va.shape[1]):
        acc = va[:, t] @ vw[:, t].T
        offset = 2 * EXPONENT_BIAS + 2 + 2 * ALIGN_BITS
        y = y + _round_to_binary32(acc, ref_a[:, t, None] + ref_w[None, :, t] - offset)
    return y


def w4a4_gemm_torch(
    a: PackedOperand,
    w: PackedOperand,
    *,
    mode: GemmMode | str = GemmMode.EXACT,
    config: GemmConfig | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pure-PyTorch twin of ``w4a4_gemm`` (same blocks, tiles, order and roundings)."""
    mode = _check_operands(a, w, mode)
    config = _resolve_config(mode, config, a.block)
    _check_epilogue(w, bias, out_dtype)
    return epilogue_torch(_gemm_torch(a, w, mode, config), bias, None, None, out_dtype)


def w4a4_gemm_scatter_add_torch(
    a: PackedOperand,
    w: PackedOperand,
    out: torch.Tensor,
    rows: torch.Tensor,
    *,
    mode: GemmMode | str = GemmMode.EXACT,
    config: GemmConfig | None = None,
) -> None:
    """Pure-PyTorch twin of ``w4a4_gemm_scatter_add``."""
    mode = _check_operands(a, w, mode)
    config = _resolve_config(mode, config, a.block)
    _check_scatter(a, w, out, rows)
    out[rows] = out[rows] + _gemm_torch(a, w, mode, config)


def fast_mode_error_bound(
    a: PackedOperand, w: PackedOperand, *, config: GemmConfig | None = None
) -> torch.Tensor:
    """float64 ``(M, N)`` bound on ``|w4a4_gemm(fast) - w4a4_gemm(exact)|``, elementwise.

    With ``|a|``, ``|w|`` the dequantized magnitudes and ``da``, ``dw`` the fast-mode alignment
    errors (``2^(r - 2 - ALIGN_BITS)`` for an element whose block exponent is more than
    ``ALIGN_BITS`` below its tile's largest ``r``, else 0), ``n_b`` blocks and ``n_t`` tiles::

        bound = da @ |w|^T + |a| @ dw^T + da @ dw^T
                + g(n_b) * |a| @ |w|^T + g(n_t) * (|a| + da) @ (|w| + dw)^T,   g(n) = n u / (1 - n u)

    (u = 2^-24): the first line is the alignment error of the exact sum, the second the binary32
    rounding of the two accumulations. It holds while no term leaves binary32's normal range.
    """
    _check_operands(a, w, GemmMode.FAST)
    require_half_e8m0(a.spec, "fast mode")
    config = _resolve_config(GemmMode.FAST, config, a.block)
    tile_blocks = config.tile_blocks(GemmMode.FAST, a.block)

    def magnitudes_and_errors(p: PackedOperand):
        h = _signed_half_units(p).abs().to(torch.float64)
        e = p.exponent.long() - EXPONENT_BIAS
        magnitude = h * torch.pow(2.0, (e - 1).to(torch.float64)).repeat_interleave(p.block, dim=1)
        tiles = -(-p.num_blocks // tile_blocks)
        padded = torch.nn.functional.pad(e, (0, tiles * tile_blocks - p.num_blocks), value=-EXPONENT_BIAS)
        ref = padded.reshape(p.rows, tiles, tile_blocks).amax(-1).repeat_interleave(tile_blocks, dim=1)
        ref = ref[:, : p.num_blocks]
        error = torch.where(
            ref - e > ALIGN_BITS, torch.pow(2.0, (ref - 2 - ALIGN_BITS).to(torch.float64)), 0.0
        )
        return magnitude, error.repeat_interleave(p.block, dim=1)

    ma, da = magnitudes_and_errors(a)
    mw, dw = magnitudes_and_errors(w)
    tiles = -(-a.num_blocks // tile_blocks)

    def gamma(n: int) -> float:
        return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)

    alignment = da @ mw.T + ma @ dw.T + da @ dw.T
    rounding = gamma(a.num_blocks) * (ma @ mw.T) + gamma(tiles) * ((ma + da) @ (mw + dw).T)
    return alignment + rounding
