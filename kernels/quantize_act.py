"""Activation quantization: float rows -> packed codes, exponent bytes and dialect ids.

One program quantizes ``ROWS`` rows of one block column, each thread whole blocks of its own rows
(so no reduction over a block leaves the thread). The front-end (NUMERICS 2.1 steps 1-3):

* the block's shared exponent is ``e = max(F_amax - 129, -127)`` where ``F_amax`` is the exponent
  field of the block maximum (a subnormal or zero maximum gives the clamp value -127, byte 0);
* ``u = min(31, floor(|x| 2^(2 - e)))``: the twin computes it on the bit pattern,
  ``m >> (148 + e - f)`` for ``|x| = m * 2^(f - 150)``; the kernel by two exact multiplies by
  powers of two and a truncation (kernels/README.md, "How the kernels stay exact").

Dialect selection is the LUT rule (``cost[d] = sum ERR[d][u]``, first minimum, optional candidate
mask) or, for DialectFP4-16, BlockDialect's two-stage rule; MXFP4 rounds ``x / 2^e`` to E2M1 with a
table indexed by ``u`` and by whether ``|x| 2^(2-e)`` is exactly ``u`` (every E2M1 midpoint is a
whole number of quarter units, so ``u`` and that flag decide the rounding, ties included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from golden.blocks import InputError
from golden.formats import CODE_BITS, EXPONENT_BIAS, NUM_UCODES, FormatError, FormatSpec, Selection
from golden.select import check_candidate_mask

from .launch import LAUNCH_OPTIONS, check_runnable
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

#: The exponent byte the front-end produces for a block holding a NaN or an infinity (exponent field
#: 255); finite blocks stay at or below EXPONENT_BIAS + 125, so this byte flags them for the wrapper.
NONFINITE_EXPONENT_BYTE = (2 * FLOAT32_BIAS + 1) - (FLOAT32_BIAS + 2) + EXPONENT_BIAS

#: Activations the kernels take; each converts to binary32 exactly.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class QuantizeConfig:
    """Launch shape of the quantization kernel: rows per program and warps.

    ``rows=None`` (the default) picks ``num_warps * 32 * max(1, 64 // block)`` rows: each thread
    quantizes whole blocks of its own rows, about 64 values (the AOT report's configurations).
    """

    rows: int | None = None
    num_warps: int = 2

    def __post_init__(self) -> None:
        if self.rows is not None and (self.rows < 16 or self.rows & (self.rows - 1)):
            raise InputError(f"rows per program must be a power of two of at least 16, got {self.rows}")
        if self.num_warps < 1 or self.num_warps & (self.num_warps - 1):
            raise InputError(f"warps per program must be a power of two, got {self.num_warps}")

    def rows_for(self, block: int) -> int:
        """Rows per program for blocks of ``block`` values."""
        if self.rows is not None:
            return self.rows
        return self.num_warps * 32 * max(1, 64 // block)


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
):  # fmt: skip
    """Quantize ``ROWS`` rows x one block: x (M, K) float -> codes (M, K/2), exponent/dialect (M, K/B).

    The block is loaded as ``(BLOCK / VEC, ROWS, VEC)``: pieces of VEC contiguous values (one
    16-byte vector), rows across the threads, so that a thread holds whole blocks of its rows and
    every reduction over a block (maximum, histogram, range counts) stays inside the thread.
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

    if RULE == _RULE_MXFP4:
        exact = whole.to(tl.float32) == product
        index = tl.load(mx_round_ptr + exact.to(tl.int32) * _NUM_UCODES + u)
    else:
        if RULE == _RULE_LUT:
            # Histogram form: cost = H @ ERR^T, H the (ROWS, 32) counts of each u in the block.
            # ERR = 128 ERR_hi + ERR_lo with both parts in int8, so two exact int8 dots.
            tl.static_assert(ROWS >= 16, "the LUT cost is a tl.dot: at least 16 rows per program")
            tl.static_assert(DIALECTS_PAD <= _MAX_DIALECTS_PAD, "the minimum's key cost * D' + id must fit int32")
            hist = _histogram(u)
            bins = tl.arange(0, _NUM_UCODES)  # err_split's columns are in the histogram's bin order
            d = tl.arange(0, DIALECTS_PAD)
            err_lo = tl.load(err_ptr + d[None, :] * _NUM_UCODES + bins[:, None])  # (32, DIALECTS_PAD)
            err_hi = tl.load(err_ptr + (DIALECTS_PAD + d[None, :]) * _NUM_UCODES + bins[:, None])
            cost = tl.dot(hist, err_hi, out_dtype=tl.int32) * _ERR_SPLIT + tl.dot(hist, err_lo, out_dtype=tl.int32)
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
            umax = tl.minimum((amax.to(tl.float32, bitcast=True) * _power_of_two(first)) * _power_of_two(2 - e - first), 31.0).to(tl.int32)
            pair = PAIR_TOP - tl.minimum(tl.maximum(umax >> 1, PAIR_TOP - NUM_PAIRS + 1), PAIR_TOP)
            bounds = ranges_ptr + pair * 4  # [A lo, A hi, B lo, B hi]
            count_a = _range_count(u, tl.load(bounds), tl.load(bounds + 1))
            count_b = _range_count(u, tl.load(bounds + 2), tl.load(bounds + 3))
            dialect = 2 * pair + (count_b > count_a).to(tl.int32)
            dialect = tl.where(umax == 0, 0, dialect)
        index = tl.load(idx_ptr + dialect[None, :, None] * _NUM_UCODES + u)
        tl.store(dialect_ptr + rows64 * stride_meta + block, dialect.to(tl.uint8), mask=row_ok)

    code = ((bits >> (_FLOAT_SIGN_BIT - _SIGN_SHIFT)) & _CODE_SIGN) | index
    code_even, code_odd = tl.split(tl.reshape(code, (PIECES, ROWS, VEC // 2, 2)))
    packed = (code_even | (code_odd << 4)).to(tl.uint8)
    byte = tl.arange(0, VEC // 2)[None, None, :]
    codes_column = block * (BLOCK // 2) + piece * (VEC // 2) + byte
    tl.store(codes_ptr + rows64[None, :, None] * stride_codes + codes_column, packed, mask=row_ok[None, :, None])
    tl.store(exponent_ptr + rows64 * stride_meta + block, (e + _EXP_BIAS).to(tl.uint8), mask=row_ok)


#: Bytes of one vector load: a thread reads its rows' blocks in pieces of this many bytes.
VECTOR_BYTES = 16


def vector_width(dtype: torch.dtype, block: int) -> int:
    """Values of ``dtype`` per vector load piece of a block (16 bytes, at most the block)."""
    return min(block, VECTOR_BYTES // torch.empty(0, dtype=dtype).element_size())


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
        format: ``"fb32"`` (LUT selection), ``"dialectfp4"`` (two-stage selection) or ``"mxfp4"``.
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
    codes = torch.empty(rows, length // 2, dtype=torch.uint8, device=device)
    exponent = torch.empty(rows, nblocks, dtype=torch.uint8, device=device)
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
        rows_per_program = config.rows_for(block)
        grid = (triton.cdiv(rows, rows_per_program), nblocks)
        _quantize_rows_kernel[grid](
            x_ptr=x2d, stride_x=x2d.stride(0),
            codes_ptr=codes, stride_codes=codes.stride(0),
            exponent_ptr=exponent, dialect_ptr=dialect, stride_meta=exponent.stride(0),
            mask_ptr=mask_arg, stride_mask_row=mask_strides[0], stride_mask_block=mask_strides[1],
            err_ptr=tables.err_split, idx_ptr=tables.idx, ranges_ptr=tables.two_stage, mx_round_ptr=tables.mx_round,
            num_rows=rows,
            BLOCK=block, ROWS=rows_per_program, VEC=vector_width(x2d.dtype, block), NUM_DIALECTS=tables.num_dialects, DIALECTS_PAD=tables.err_split.shape[1], RULE=int(rule),
            HAS_MASK=mask is not None, PAIR_TOP=tables.pair_top, NUM_PAIRS=tables.num_pairs,
            num_warps=config.num_warps, **LAUNCH_OPTIONS,
        )  # fmt: skip
    if validate:
        _check_finite(x, exponent)
    return PackedOperand(
        format=spec.name,
        block=block,
        codes=codes,
        exponent=exponent,
        dialect=dialect if spec.is_dialect else None,
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
        exponent=(e + EXPONENT_BIAS).to(torch.uint8),
        dialect=None if dialect is None else dialect.to(torch.uint8),
    )
