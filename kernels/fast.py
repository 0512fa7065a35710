"""Fast-mode W4A4 GEMM: int8 tensor-core dots on pre-aligned operands, one rescale per K tile.

The fast mode's numerics are those of ``gemm.py`` (``GemmMode.FAST``): inside a K tile every row of
A and of W is aligned to its largest block exponent ``r`` on a grid ``2^ALIGN_BITS`` finer than a
half unit, one int32 dot per tile is scaled by ``2^(r_a + r_w - 2 (EXPONENT_BIAS + 1 + ALIGN_BITS))``
and added. This module makes that cheap on a GPU by moving the per-element work out of the main
loop:

* **Activations** are decoded and aligned once, by ``prepare_activations`` (a bandwidth-bound pass
  right after quantization): int8 ``(M, K)`` GEMM-ready values plus one reference exponent byte per
  (row, K tile). The GEMM streams them into the tensor cores with pipelined loads.
* **Weights** stay packed 4-bit. ``FastWeight.from_packed`` (offline, once per weight) stores for
  every (column, block) the id of its *aligned decode table*: the 16 signed int8 values its 4-bit
  codes stand for after alignment, which depend only on the block's dialect and on its shift
  ``min(r - e, 8)`` (``fast_tables``: D x 9 tables generated from the registry). The codes of each
  group of 8 elements are stored in the order ``0 2 4 6 1 3 5 7``, so that the byte permutes below
  produce the even and the odd elements of the group directly.
* **Decode** in the main loop is a byte-permute table lookup (PTX ``prmt``): per 8 codes (one
  32-bit word), a ``prmt`` of the positive and one of the negative table per 4 codes and a third
  that picks by sign, about 13 instructions per 8 elements, once per element per CTA.
* **Rescale**: ``t = fma(bits(acc + M), p_a, -M' p_a)`` converts and scales the int32 tile sum
  exactly (``M`` the integer pattern of ``M' = 1.5 * 2^23``, valid for ``|acc| < 2^22``), and
  ``y = fma(t, p_w, y)`` adds it with one rounding: three instructions per output and tile.
* **Epilogue**: an optional float32 residual row (activation decomposition, gathered through a
  row -> slot map) and bias are added in float32, then the tile is stored in the output dtype.

Under ``TRITON_INTERPRET=1`` the ``prmt`` lookup runs as ``_decode_emulated``, Triton integer code
with the same tables and the same byte order; the PTX text itself (``DECODE_PTX``) is checked by the
tests with a small evaluator of its instructions.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from golden.blocks import InputError
from golden.formats import EXPONENT_BIAS

from .gemm import (
    _FAST_HALF_OFFSET,
    GemmConfig,
    GemmMode,
    _align,
    _epilogue,
    _load_tile,
    _per_byte,
    _pow2,
    _scale,
    _to_out,
)
from .launch import LAUNCH_OPTIONS, interpreting
from .packed import PackedOperand
from .tables import (
    ALIGN_BITS,
    FLOAT32_BIAS,
    FLOAT32_MANTISSA_BITS,
    NUM_ALIGN_SHIFTS,
    align_half_units,
    fast_tables,
    format_tables,
)

__all__ = [
    "DECODE_PTX",
    "FastActivation",
    "FastWeight",
    "fast_weight",
    "launch_fast",
    "prepare_activations",
    "prepare_activations_torch",
]

#: Codes per decode call: 4 words of 8 codes (natural order), which one call turns into 8 registers.
GROUP = 32


def _decode_ptx() -> str:
    """Byte-permute decode of 4 words of codes ($8..$11) into 8 registers of 4 int8 ($0..$7).

    Word j's aligned table: positive values of indices 0..3 / 4..7 in $12+j / $16+j, negative ones
    in $20+j / $24+j. Output 2 j + h comes from half-word h of word j: a selector nibble is a code
    with its sign bit cleared (prmt bytes 0..3 from the first source, 4..7 from the second), and a
    last prmt takes byte k from the positive (k) or the negative (4 + k) lookup, by the sign bit.
    """
    lines = ["{", ".reg .b32 sel, pos, neg, sgn, half;"]
    for j in range(4):
        code, p_lo, p_hi, n_lo, n_hi = (f"${8 + j}", f"${12 + j}", f"${16 + j}", f"${20 + j}", f"${24 + j}")
        for h in range(2):
            if h == 0:
                lines.append(f"and.b32 sel, {code}, 0x7777;")
            else:
                lines += [f"shr.u32 half, {code}, 16;", "and.b32 sel, half, 0x7777;"]
            lines += [
                f"prmt.b32 pos, {p_lo}, {p_hi}, sel;",
                f"prmt.b32 neg, {n_lo}, {n_hi}, sel;",
                f"shr.u32 sgn, {code}, {1 + 16 * h};",
                "and.b32 sgn, sgn, 0x4444;",
                "or.b32 sgn, sgn, 0x3210;",
                f"prmt.b32 ${2 * j + h}, pos, neg, sgn;",
            ]
    lines.append("}")
    return "\n".join(lines)


DECODE_PTX = _decode_ptx()
_DECODE_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 8 + ["r"] * 20))
_DECODE_PTX = tl.constexpr(DECODE_PTX)

#: int32 pattern of 1.5 * 2^23: bits(M + acc) is the float 1.5 * 2^23 + acc for |acc| < 2^22.
_MAGIC_INT = tl.constexpr(0x4B400000)
_NEG_MAGIC_FLOAT = tl.constexpr(-12582912.0)
_NUM_SHIFTS = tl.constexpr(NUM_ALIGN_SHIFTS)
#: Exact mode's common path needs t = acc p_a exact and M' p_a finite: p_a <= 2^104 (|acc| < 2^19).
_EXACT_SPLIT_MAX = tl.constexpr(2.0**104)
_TWO_64 = tl.constexpr(2.0**64)
_SMALLEST_NORMAL = tl.constexpr(2.0 ** (1 - FLOAT32_BIAS))
_MANTISSA_BITS = tl.constexpr(FLOAT32_MANTISSA_BITS)
_FLOAT_BIAS = tl.constexpr(FLOAT32_BIAS)
_MAX_SHIFT = tl.constexpr(NUM_ALIGN_SHIFTS - 1)


@dataclass(frozen=True)
class FastActivation:
    """GEMM-ready activations: int8 ``values`` ``(M', K')`` aligned per (row, K tile), K zero-padded
    to whole K tiles and M to whole row tiles (so the GEMM needs no load masks); ``ref`` uint8
    ``(M', T)`` the biased reference exponent of each tile; the tile length ``tile_k``."""

    values: torch.Tensor
    ref: torch.Tensor
    tile_k: int
    format: str
    block: int
    #: float32 ``(T, M')``: ``2^(ref - EXPONENT_BIAS - 1 - ALIGN_BITS)``, the value of one grid step.
    scale: torch.Tensor
    #: M; the tensors hold ``M'`` rows, M padded with zero rows to whole row tiles of the GEMM.
    rows: int


@dataclass(frozen=True)
class FastWeight:
    """A packed weight prepared for the fast GEMM (offline, once).

    ``codes``: uint8 ``(N, K' // 2)``, K zero-padded to whole K tiles (``K'``). ``table``: int16
    ``(N, K // block)``, ``dialect * NUM_ALIGN_SHIFTS + shift`` into ``fast_tables``. ``ref``: uint8
    ``(N, T)``, each (column, K tile)'s largest biased block exponent. 4 bits per element plus
    3 bytes per block and tile, like the packed operand itself.
    """

    codes: torch.Tensor
    table: torch.Tensor
    ref: torch.Tensor
    tile_k: int
    format: str
    block: int
    length: int
    #: float32 ``(T, N')``: ``2^(ref - EXPONENT_BIAS - 1 - ALIGN_BITS)``, the value of one grid step.
    scale: torch.Tensor
    #: N; the tensors hold ``N'`` rows, N padded with zero rows to whole column tiles of the GEMM.
    rows: int

    def aligned_values(self) -> torch.Tensor:
        """int64 ``(N, K)`` aligned values, decoded through ``fast_tables`` in plain torch (a check)."""
        tables = fast_tables(self.format, self.codes.device).long()
        signed = torch.stack([(tables >> (8 * i)) & 0xFF for i in range(4)], dim=-1)
        signed = (signed - ((signed & 0x80) << 1)).reshape(-1, 2, 8)  # [table, positive/negative, index]
        codes = torch.stack((self.codes & 0xF, self.codes >> 4), dim=-1).reshape(self.codes.shape[0], -1).long()
        codes = codes[: self.rows, : self.length]
        table = self.table.long().repeat_interleave(self.block, dim=1)[: self.rows, : self.length]
        return signed[table, codes >> 3, codes & 7]

    @classmethod
    def from_packed(cls, w: PackedOperand, tile_k: int, row_multiple: int = 1) -> FastWeight:
        tile_blocks = GemmConfig(fast_tile_k=tile_k).tile_blocks(GemmMode.FAST, w.block)
        exponent = w.exponent.long()
        ref = _tile_max(exponent, tile_blocks)
        shift = (ref.repeat_interleave(tile_blocks, dim=1)[:, : w.num_blocks] - exponent).clamp(max=NUM_ALIGN_SHIFTS - 1)
        dialect = torch.zeros_like(exponent) if w.dialect is None else w.dialect.long()
        padded = _padded(w.length, tile_k)
        pad_rows = _padded(w.rows, row_multiple) - w.rows
        return cls(
            codes=torch.nn.functional.pad(w.codes, (0, (padded - w.length) // 2, 0, pad_rows)).contiguous(),
            table=torch.nn.functional.pad(dialect * NUM_ALIGN_SHIFTS + shift, (0, (padded - w.length) // w.block, 0,
                                                                               pad_rows)).to(torch.int16).contiguous(),
            ref=ref.to(torch.uint8).contiguous(),
            tile_k=tile_k,
            format=w.format,
            block=w.block,
            length=w.length,
            scale=torch.nn.functional.pad(grid_step(ref).T, (0, pad_rows)).contiguous(),
            rows=w.rows,
        )


def grid_step(ref: torch.Tensor) -> torch.Tensor:
    """float32 value of one alignment grid step for biased reference exponents ``ref`` (exact)."""
    return torch.ldexp(torch.ones(ref.shape, dtype=torch.float64, device=ref.device), ref.long() - (EXPONENT_BIAS + 1 + ALIGN_BITS)).float()


def _tile_max(exponent: torch.Tensor, tile_blocks: int) -> torch.Tensor:
    """(R, T) largest value of each tile of ``tile_blocks`` blocks (a partial last tile included)."""
    rows, blocks = exponent.shape
    tiles = -(-blocks // tile_blocks)
    padded = torch.nn.functional.pad(exponent, (0, tiles * tile_blocks - blocks), value=0)
    return padded.reshape(rows, tiles, tile_blocks).amax(-1)


#: Prepared weights per (id of the codes tensor, tile length); dropped with the codes tensor.
_FAST_WEIGHTS: dict[tuple[int, int, int], FastWeight] = {}


def fast_weight(w: PackedOperand, tile_k: int, row_multiple: int = 1) -> FastWeight:
    """``FastWeight.from_packed``, cached for the lifetime of ``w.codes`` (weights are immutable)."""
    key = (id(w.codes), tile_k, row_multiple)
    prepared = _FAST_WEIGHTS.get(key)
    if prepared is None:
        prepared = FastWeight.from_packed(w, tile_k, row_multiple)
        _FAST_WEIGHTS[key] = prepared
        weakref.finalize(w.codes, _FAST_WEIGHTS.pop, key, None)
    return prepared


# --------------------------------------------------------------------------------------------
# Activation preparation
# --------------------------------------------------------------------------------------------


@triton.jit
def _prepare_activations_kernel(
    codes_ptr, exponent_ptr, dialect_ptr, stride_codes, stride_meta, words_ptr,
    values_ptr, stride_values, ref_ptr, stride_ref, scale_ptr, stride_scale, num_rows, padded_rows, num_blocks,
    padded_length,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, TILE_BLOCKS: tl.constexpr, HAS_DIALECT: tl.constexpr,
):  # fmt: skip
    """ROWS rows x one K tile: packed codes -> aligned int8 values and the tile's reference exponent."""
    TILE_BYTES: tl.constexpr = TILE_BLOCKS * BLOCK // 2
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    tile = tl.program_id(1)
    row_ok = rows < num_rows
    rows64 = rows.to(tl.int64)
    even, odd, e = _load_tile(codes_ptr, exponent_ptr, dialect_ptr, stride_codes, stride_meta, words_ptr,
                              rows64, row_ok, tile, num_blocks, TILE_BLOCKS, BLOCK, HAS_DIALECT)  # fmt: skip
    TILE_K: tl.constexpr = 2 * TILE_BYTES
    ref = tl.max(e, axis=1)
    shift = ref[:, None] - _per_byte(e, TILE_BLOCKS, BLOCK)
    values = tl.join(_align(even, shift), _align(odd, shift))
    values = tl.reshape(values, (ROWS, TILE_K))
    k = tile * TILE_K + tl.arange(0, TILE_K)
    values = tl.where(k[None, :] < num_blocks * BLOCK, values, 0).to(tl.int8)  # padding rows: all 0
    store_ok = rows < padded_rows
    ok = store_ok[:, None] & (k[None, :] < padded_length)
    tl.store(values_ptr + rows64[:, None] * stride_values + k[None, :], values, mask=ok)
    tl.store(ref_ptr + rows64 * stride_ref + tile, ref.to(tl.uint8), mask=store_ok)
    scale = tl.where(row_ok, _pow2(ref - _FAST_HALF_OFFSET), 0.0)
    tl.store(scale_ptr + tile * stride_scale + rows64, scale, mask=store_ok)


def prepare_activations(a: PackedOperand, tile_k: int, row_multiple: int = 1, *,
                        rows_per_program: int = 16) -> FastActivation:  # fmt: skip
    """Decode and align packed activations for the fast GEMM (one bandwidth-bound pass); rows are
    padded with zeros to a multiple of ``row_multiple``."""
    tile_blocks = GemmConfig(fast_tile_k=tile_k).tile_blocks(GemmMode.FAST, a.block)
    tiles = triton.cdiv(a.num_blocks, tile_blocks)
    rows = _padded(a.rows, row_multiple)
    values = torch.empty(rows, _padded(a.length, tile_k), dtype=torch.int8, device=a.device)
    ref = torch.empty(rows, tiles, dtype=torch.uint8, device=a.device)
    scale = torch.empty(tiles, rows, dtype=torch.float32, device=a.device)
    if a.rows:
        tables = format_tables(a.format, a.device)
        grid = (triton.cdiv(rows, rows_per_program), tiles)
        _prepare_activations_kernel[grid](
            codes_ptr=a.codes, exponent_ptr=a.exponent,
            dialect_ptr=a.exponent if a.dialect is None else a.dialect,
            stride_codes=a.codes.stride(0), stride_meta=a.exponent.stride(0), words_ptr=tables.words,
            values_ptr=values, stride_values=values.stride(0), ref_ptr=ref, stride_ref=ref.stride(0),
            scale_ptr=scale, stride_scale=scale.stride(0),
            num_rows=a.rows, padded_rows=rows, num_blocks=a.num_blocks, padded_length=values.shape[1],
            BLOCK=a.block, ROWS=rows_per_program, TILE_BLOCKS=tile_blocks, HAS_DIALECT=a.dialect is not None,
            **LAUNCH_OPTIONS,
        )  # fmt: skip
    return FastActivation(values, ref, tile_k, a.format, a.block, scale, a.rows)


def _signed_half_units(p: PackedOperand) -> torch.Tensor:
    tables = format_tables(p.format, p.device)
    codes = torch.stack((p.codes & 0xF, p.codes >> 4), dim=-1).flatten(-2).long()
    dialect = torch.zeros(p.rows, p.num_blocks, dtype=torch.long, device=p.device) if p.dialect is None else p.dialect.long()
    return tables.decode.long()[dialect.repeat_interleave(p.block, dim=1), codes]


def prepare_activations_torch(a: PackedOperand, tile_k: int, row_multiple: int = 1, *,
                              rows_per_program: int = 16) -> FastActivation:  # fmt: skip
    """Pure-PyTorch twin of ``prepare_activations``."""
    tile_blocks = GemmConfig(fast_tile_k=tile_k).tile_blocks(GemmMode.FAST, a.block)
    h = _signed_half_units(a)
    e = a.exponent.long()
    ref = _tile_max(e, tile_blocks)
    shift = (ref.repeat_interleave(tile_blocks, dim=1)[:, : a.num_blocks] - e).clamp(max=NUM_ALIGN_SHIFTS - 1)
    shift = shift.repeat_interleave(a.block, dim=1)
    values = align_half_units(h, shift)
    pad_rows = _padded(a.rows, row_multiple) - a.rows
    values = torch.nn.functional.pad(values, (0, _padded(a.length, tile_k) - a.length, 0, pad_rows))
    scale = torch.nn.functional.pad(grid_step(ref).T, (0, pad_rows))
    ref = torch.nn.functional.pad(ref, (0, 0, 0, pad_rows)).to(torch.uint8)
    return FastActivation(values.to(torch.int8), ref, tile_k, a.format, a.block, scale.contiguous(), a.rows)


def _padded(length: int, tile_k: int) -> int:
    """K rounded up to whole K tiles (the GEMM then needs no masks along K)."""
    return -(-length // tile_k) * tile_k


# --------------------------------------------------------------------------------------------
# The GEMM
# --------------------------------------------------------------------------------------------


@triton.jit
def _table_byte(lo, hi, index):
    """Signed byte ``index`` (0..7) of the 8-byte table (lo, hi): what prmt's byte select returns."""
    word = tl.where(index < 4, lo, hi)
    byte = (word >> ((index & 3) * 8)) & 0xFF
    return byte - ((byte & 0x80) << 1)


@triton.jit
def _decode_emulated(words, p_lo, p_hi, n_lo, n_hi, K: tl.constexpr):
    """The interpreter's twin of DECODE_PTX: output ``K`` (0..7) of (R, W) code words.

    Element ``4 g + i`` of output ``k = 2 j + h`` is the code in nibble ``4 h + i`` of word
    ``4 g + j``, looked up in the table of word ``4 g + j`` (as the PTX does).
    """
    R: tl.constexpr = words.shape[0]
    W: tl.constexpr = words.shape[1]
    j: tl.constexpr = K // 2
    h: tl.constexpr = K % 2
    i = tl.arange(0, 4)[None, None, :]
    word = _word_j(words, j)
    nib = tl.reshape((word[:, :, None] >> (4 * (4 * h + i))) & 0xF, (R, W))
    index = nib & 7
    negative = _table_byte(_spread(_word_j(n_lo, j)), _spread(_word_j(n_hi, j)), index)
    positive = _table_byte(_spread(_word_j(p_lo, j)), _spread(_word_j(p_hi, j)), index)
    return tl.where((nib & 8) != 0, negative, positive).to(tl.int8)


@triton.jit
def _word_j(values, j: tl.constexpr):
    """(R, W) -> (R, W // 4): entry j of every group of 4."""
    grouped = tl.reshape(values, (values.shape[0], values.shape[1] // 4, 4))
    return tl.sum(tl.where(tl.arange(0, 4)[None, None, :] == j, grouped, 0), axis=2)


@triton.jit
def _spread(values):
    """(R, G) -> (R, 4 G): each entry repeated 4 times."""
    return tl.reshape(tl.broadcast_to(values[:, :, None], (values.shape[0], values.shape[1], 4)),
                      (values.shape[0], 4 * values.shape[1]))  # fmt: skip


@triton.jit
def _repeat(values, UNIT: tl.constexpr):
    """(R, G) -> (R, UNIT G): each entry repeated UNIT times along the row."""
    if UNIT == 1:
        return values
    else:
        repeated = tl.broadcast_to(values[:, :, None], (values.shape[0], values.shape[1], UNIT))
        return tl.reshape(repeated, (values.shape[0], UNIT * values.shape[1]))


@triton.jit
def _decode_weights(codes_ptr, table_ptr, stride_codes, stride_table, tables_ptr, cols64, tile,
                    num_words, TILE_K: tl.constexpr, BLOCK: tl.constexpr, USE_PTX: tl.constexpr):  # fmt: skip
    """int8 (BLOCK_N, TILE_K) aligned weights of one K tile, decoded by table lookup."""
    WORDS: tl.constexpr = TILE_K // 8
    word = tl.max_contiguous(tl.multiple_of(tile * WORDS + tl.arange(0, WORDS), WORDS), WORDS)
    codes = tl.load(codes_ptr + cols64[:, None] * stride_codes + word[None, :])
    # One table load per decode call's 4 words when they share a block (BLOCK >= 32), spread over
    # the words in registers; per word for blocks of 16 (spreading pairs there made the loop spill).
    UNIT: tl.constexpr = 4 if BLOCK >= 32 else 1
    unit = tile * (WORDS // UNIT) + tl.arange(0, WORDS // UNIT)
    table = tl.load(table_ptr + cols64[:, None] * stride_table + (unit * UNIT // (BLOCK // 8))[None, :])
    row = tables_ptr + table.to(tl.int32) * 4
    p_lo = _repeat(tl.load(row), UNIT)
    p_hi = _repeat(tl.load(row + 1), UNIT)
    n_lo = _repeat(tl.load(row + 2), UNIT)
    n_hi = _repeat(tl.load(row + 3), UNIT)
    if USE_PTX:
        o0, o1, o2, o3, o4, o5, o6, o7 = tl.inline_asm_elementwise(
            _DECODE_PTX, _DECODE_CONSTRAINTS, [codes, p_lo, p_hi, n_lo, n_hi],
            dtype=(tl.int8, tl.int8, tl.int8, tl.int8, tl.int8, tl.int8, tl.int8, tl.int8), is_pure=True, pack=4)  # fmt: skip
    else:
        o0 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 0)
        o1 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 1)
        o2 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 2)
        o3 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 3)
        o4 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 4)
        o5 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 5)
        o6 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 6)
        o7 = _decode_emulated(codes, p_lo, p_hi, n_lo, n_hi, 7)
    # Output k, word 4 g + i holds element 32 g + 4 k + i: stack the outputs (k bits from the most
    # significant down), then move i innermost; all of it stays within each thread's registers.
    values = tl.join(tl.join(tl.join(o0, o4), tl.join(o2, o6)), tl.join(tl.join(o1, o5), tl.join(o3, o7)))
    values = tl.reshape(values, (values.shape[0], WORDS // 4, 4, 2, 2, 2))
    return tl.reshape(tl.permute(values, (0, 1, 3, 4, 5, 2)), (values.shape[0], TILE_K))


@triton.jit
def _rescale(acc, p_a, p_w, y):
    """y + acc p_a p_w with one rounding: bits(acc + M) - M' scaled by p_a is exact (|acc| < 2^22)."""
    shifted = (acc + _MAGIC_INT).to(tl.float32, bitcast=True)
    offset = p_a * _NEG_MAGIC_FLOAT
    term = tl.fma(shifted, p_a[:, None], offset[:, None])
    return tl.fma(term, p_w[None, :], y)


@triton.jit
def _power_exponent(p):
    """k for a float32 power of two p = 2^k >= 2^-149 (subnormal included); -191 for p = 0."""
    normal = (p.to(tl.int32, bitcast=True) >> _MANTISSA_BITS) - _FLOAT_BIAS
    scaled_up = ((p * _TWO_64).to(tl.int32, bitcast=True) >> _MANTISSA_BITS) - (_FLOAT_BIAS + 64)
    return tl.where(p >= _SMALLEST_NORMAL, normal, scaled_up)


#: How _main_loop adds a tile's int32 sum: fast mode's one rounding, exact mode's two-multiply
#: term (then an addition), or exact mode's general per-element split (huge activation exponents).
_TERM_FAST = tl.constexpr(0)
_TERM_EXACT = tl.constexpr(1)
_TERM_EXACT_SPLIT = tl.constexpr(2)


@triton.jit
def _main_loop(a_ptr, a_scale_ptr, stride_a, stride_a_scale, w_codes_ptr, w_table_ptr, w_scale_ptr,
               stride_w_codes, stride_w_table, stride_w_scale, tables_ptr, rows64, cols64, num_words, num_tiles,
               BLOCK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, TILE_K: tl.constexpr,
               NUM_STAGES: tl.constexpr, USE_PTX: tl.constexpr, TERM: tl.constexpr):  # fmt: skip
    """y (BLOCK_M, BLOCK_N) float32 summed over the K tiles, from +0.0 in increasing K order.

    Exact terms (one block per tile; acc is 64 times the exact block sum, |acc| < 2^19):
    ``_TERM_EXACT`` needs every p_a <= 2^104: ``t = float(acc) p_a`` is exact (a multiple of
    2^-125 below 2^123) and ``t p_w`` is the single rounding; ``_TERM_EXACT_SPLIT``
    is ``gemm._scale``'s general per-element split. Then ``y = fl32(y + term)``.
    """
    k = tl.arange(0, TILE_K)
    y = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for tile in tl.range(0, num_tiles, num_stages=NUM_STAGES):
        kk = tl.max_contiguous(tl.multiple_of(tile * TILE_K + k, TILE_K), TILE_K)
        a = tl.load(a_ptr + rows64[:, None] * stride_a + kk[None, :])  # operands padded: no masks
        w = _decode_weights(w_codes_ptr, w_table_ptr, stride_w_codes, stride_w_table, tables_ptr, cols64, tile,
                            num_words, TILE_K, BLOCK, USE_PTX)  # fmt: skip
        acc = tl.dot(a, tl.trans(w), out_dtype=tl.int32)
        p_a = tl.load(a_scale_ptr + tile * stride_a_scale + rows64)
        p_w = tl.load(w_scale_ptr + tile * stride_w_scale + cols64)
        if TERM == _TERM_FAST:
            y = _rescale(acc, p_a, p_w, y)
        elif TERM == _TERM_EXACT:
            y = y + (acc.to(tl.float32) * p_a[:, None]) * p_w[None, :]
        else:
            y = y + _scale(acc, _power_exponent(p_a)[:, None] + _power_exponent(p_w)[None, :])
    return y


@triton.jit
def _w4a4_fast_kernel(
    a_ptr, a_scale_ptr, stride_a, stride_a_scale,
    w_codes_ptr, w_table_ptr, w_scale_ptr, stride_w_codes, stride_w_table, stride_w_scale,
    tables_ptr, bias_ptr, residual_ptr, stride_residual, slot_ptr, out_ptr, stride_out,
    num_rows, num_cols, num_blocks, num_words, num_tiles,
    BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    TILE_BLOCKS: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    USE_PTX: tl.constexpr,
    EXACT: tl.constexpr = False,
):  # fmt: skip
    """One (BLOCK_M, BLOCK_N) tile of y = A @ W.T in fast mode, with the fused epilogue.

    ``EXACT`` (with one block per K tile, where the alignment is exact): exact mode instead, each
    block's term rounded once and then added, ``y = fl32(y + fl32(acc 2^(e_a + e_w - 2)))``.
    """
    TILE_K: tl.constexpr = TILE_BLOCKS * BLOCK
    tl.static_assert(TILE_K >= 32, "an int8 tl.dot needs K >= 32")
    tl.static_assert(not EXACT or TILE_BLOCKS == 1, "exact mode rounds every block's term")
    # Grouped launch order: GROUP_M row tiles share each column tile while it is hot in L2.
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(num_rows, BLOCK_M)
    tiles_n = tl.cdiv(num_cols, BLOCK_N)
    group = pid // (GROUP_M * tiles_n)
    first_m = group * GROUP_M
    group_size = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * tiles_n)) % group_size
    pid_n = (pid % (GROUP_M * tiles_n)) // group_size
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < num_rows
    col_ok = cols < num_cols
    rows64 = rows.to(tl.int64)
    cols64 = cols.to(tl.int64)
    if EXACT:
        # One uniform choice per program: its rows' largest grid step over all of K decides whether
        # every term can take the two-multiply path (NUMERICS 4 exactly either way).
        p_max = tl.zeros((BLOCK_M,), tl.float32)
        for tile in range(0, num_tiles):
            p_max = tl.maximum(p_max, tl.load(a_scale_ptr + tile * stride_a_scale + rows64))
        if tl.max(p_max, axis=0) <= _EXACT_SPLIT_MAX:
            y = _main_loop(a_ptr, a_scale_ptr, stride_a, stride_a_scale, w_codes_ptr, w_table_ptr, w_scale_ptr,
                           stride_w_codes, stride_w_table, stride_w_scale, tables_ptr, rows64, cols64, num_words,
                           num_tiles, BLOCK, BLOCK_M, BLOCK_N, TILE_K, NUM_STAGES, USE_PTX, _TERM_EXACT)
        else:
            y = _main_loop(a_ptr, a_scale_ptr, stride_a, stride_a_scale, w_codes_ptr, w_table_ptr, w_scale_ptr,
                           stride_w_codes, stride_w_table, stride_w_scale, tables_ptr, rows64, cols64, num_words,
                           num_tiles, BLOCK, BLOCK_M, BLOCK_N, TILE_K, NUM_STAGES, USE_PTX, _TERM_EXACT_SPLIT)
    else:
        y = _main_loop(a_ptr, a_scale_ptr, stride_a, stride_a_scale, w_codes_ptr, w_table_ptr, w_scale_ptr,
                       stride_w_codes, stride_w_table, stride_w_scale, tables_ptr, rows64, cols64, num_words,
                       num_tiles, BLOCK, BLOCK_M, BLOCK_N, TILE_K, NUM_STAGES, USE_PTX, _TERM_FAST)
    out_mask = row_ok[:, None] & col_ok[None, :]
    y = _epilogue(y, rows, cols64, row_ok, col_ok, bias_ptr, residual_ptr, stride_residual, slot_ptr,
                  HAS_BIAS, HAS_RESIDUAL)  # fmt: skip
    out = out_ptr + rows64[:, None] * stride_out + cols64[None, :]
    tl.store(out, _to_out(y, out_ptr.dtype.element_ty), mask=out_mask)


def launch_fast(a: FastActivation, w: FastWeight, config: GemmConfig, out: torch.Tensor,
                bias: torch.Tensor | None, residual: torch.Tensor | None, slot: torch.Tensor | None,
                exact: bool = False) -> None:  # fmt: skip
    """Launch the fast kernel into ``out`` ``(M, N)`` (any float dtype); arguments already checked.

    ``exact``: operands prepared with one block per K tile, and exact mode's per-block rounding.
    """
    if a.rows == 0 or w.rows == 0:
        return
    if a.values.shape[0] % config.block_m or w.codes.shape[0] % config.block_n:
        raise InputError(
            f"the fast kernel reads whole tiles: prepare the operands with row multiples "
            f"{config.block_m} (activations) and {config.block_n} (weights)"
        )
    tile_blocks = a.tile_k // a.block
    tables = fast_tables(a.format, out.device)
    num_blocks = w.length // w.block
    grid = (triton.cdiv(a.rows, config.block_m) * triton.cdiv(w.rows, config.block_n),)
    _w4a4_fast_kernel[grid](
        a_ptr=a.values, a_scale_ptr=a.scale, stride_a=a.values.stride(0), stride_a_scale=a.scale.stride(0),
        w_codes_ptr=w.codes.view(torch.int32), w_table_ptr=w.table, w_scale_ptr=w.scale,
        stride_w_codes=w.codes.stride(0) // 4, stride_w_table=w.table.stride(0), stride_w_scale=w.scale.stride(0),
        tables_ptr=tables,
        bias_ptr=out if bias is None else bias,
        residual_ptr=out if residual is None else residual,
        stride_residual=0 if residual is None else residual.stride(0),
        slot_ptr=a.values if slot is None else slot, out_ptr=out, stride_out=out.stride(0),
        num_rows=a.rows, num_cols=w.rows, num_blocks=num_blocks, num_words=w.codes.shape[1] // 4, num_tiles=triton.cdiv(num_blocks, tile_blocks),
        BLOCK=a.block, BLOCK_M=config.block_m, BLOCK_N=config.block_n, TILE_BLOCKS=tile_blocks,
        GROUP_M=config.group_m, NUM_STAGES=config.num_stages, HAS_BIAS=bias is not None,
        HAS_RESIDUAL=residual is not None, USE_PTX=not interpreting(), EXACT=exact,
        num_warps=config.num_warps, num_stages=config.num_stages, **LAUNCH_OPTIONS,
    )  # fmt: skip
