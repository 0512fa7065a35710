"""Activation quantization: float rows -> packed codes, exponent bytes and dialect ids.

One program quantizes ``ROWS`` rows of one block column. The front-end (NUMERICS 2.1 steps 1-3) runs
on the binary32 bit pattern with integer operations only, so it is exact for normal and subnormal
inputs alike:

* ``|x| = m * 2^(f - 150)`` with ``f = max(exponent field, 1)`` and ``m`` the 24-bit significand;
* the block's shared exponent is ``e = max(F_amax - 129, -127)`` where ``F_amax`` is the exponent
  field of the block maximum (a subnormal or zero maximum gives the clamp value -127, byte 0);
* ``u = min(31, m >> (148 + e - f))`` (the shift is always at least 19).

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
_MANTISSA_MASK = tl.constexpr((1 << FLOAT32_MANTISSA_BITS) - 1)
#: u = significand >> (_SHIFT_BASE + e - f): the binary32 scale 2^(f - bias - mantissa bits) times 2^(2 - e).
_SHIFT_BASE = tl.constexpr(FLOAT32_BIAS + FLOAT32_MANTISSA_BITS - 2)
#: e = exponent field of the block maximum - _FIELD_TO_E (bias 127, then floor(log2 amax) - 2).
_FIELD_TO_E = tl.constexpr(FLOAT32_BIAS + 2)
_U_MAX = tl.constexpr(NUM_UCODES - 1)
_EXP_BIAS = tl.constexpr(EXPONENT_BIAS)
_NUM_UCODES = tl.constexpr(NUM_UCODES)
_SIGN_SHIFT = tl.constexpr(CODE_BITS - 1)  # position of the sign bit in a code
_RULE_LUT = tl.constexpr(int(ActivationRule.LUT))
_RULE_TWO_STAGE = tl.constexpr(int(ActivationRule.TWO_STAGE))
_RULE_MXFP4 = tl.constexpr(int(ActivationRule.MXFP4))
#: Larger than any LUT cost (32 * 961 < 2^15 for B <= 32, < 2^16 for B = 64).
_NO_CANDIDATE = tl.constexpr(1 << 30)
_ERR_SPLIT = tl.constexpr(ERR_SPLIT)

#: The exponent byte the front-end produces for a block holding a NaN or an infinity (exponent field
#: 255); finite blocks stay at or below EXPONENT_BIAS + 125, so this byte flags them for the wrapper.
NONFINITE_EXPONENT_BYTE = (2 * FLOAT32_BIAS + 1) - (FLOAT32_BIAS + 2) + EXPONENT_BIAS

#: Activations the kernels take; each converts to binary32 exactly.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class QuantizeConfig:
    """Launch shape of the quantization kernel: rows per program and warps."""

    rows: int = 32
    num_warps: int = 4

    def __post_init__(self) -> None:
        if self.rows < 16 or self.rows & (self.rows - 1):
            raise InputError(f"rows per program must be a power of two of at least 16, got {self.rows}")


@triton.jit
def _front_end(x, e):
    """(u, exact) of binary32 values ``x`` in a block of shared exponent ``e`` (broadcast)."""
    magnitude = x.to(tl.int32, bitcast=True) & 0x7FFFFFFF
    field = magnitude >> _MANTISSA_BITS
    significand = (magnitude & _MANTISSA_MASK) | ((field > 0).to(tl.int32) << _MANTISSA_BITS)
    # |x| 2^(2 - e) = significand * 2^(f - bias - mantissa bits + 2 - e); the shift is >= 19.
    shift = _SHIFT_BASE + e - tl.maximum(field, 1)
    shift = tl.minimum(shift, 31)
    whole = significand >> shift
    exact = (whole << shift) == significand
    return tl.minimum(whole, _U_MAX), exact


@triton.jit
def _packed_counts(u):
    """(R, 8, 4) counts of each u (0..31) per row: u = 4 s + j is counted in byte j of word s.

    One compare per word instead of per bin; a byte cannot overflow since a block holds at most
    64 values.
    """
    words = tl.arange(0, _NUM_UCODES // 4)
    one = 1 << ((u & 3) << 3)
    packed = tl.sum(tl.where((u >> 2)[:, :, None] == words[None, None, :], one[:, :, None], 0), axis=1)
    return (packed[:, :, None] >> (tl.arange(0, 4) * 8)[None, None, :]) & 0xFF


@triton.jit
def _range_count(u_even, u_odd, lo, hi):
    inside_even = (u_even >= lo[:, None]) & (u_even < hi[:, None])
    inside_odd = (u_odd >= lo[:, None]) & (u_odd < hi[:, None])
    return tl.sum(inside_even.to(tl.int32), axis=1) + tl.sum(inside_odd.to(tl.int32), axis=1)


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
    NUM_DIALECTS: tl.constexpr,
    DIALECTS_PAD: tl.constexpr,
    RULE: tl.constexpr,
    HAS_MASK: tl.constexpr,
    PAIR_TOP: tl.constexpr,
    NUM_PAIRS: tl.constexpr,
):  # fmt: skip
    """Quantize ``ROWS`` rows x one block: x (M, K) float -> codes (M, K/2), exponent/dialect (M, K/B)."""
    tl.static_assert(BLOCK % 2 == 0, "blocks hold whole bytes of packed codes")
    tl.static_assert(
        RULE == _RULE_LUT or RULE == _RULE_TWO_STAGE or RULE == _RULE_MXFP4, "RULE is an ActivationRule"
    )
    tl.static_assert(not HAS_MASK or RULE == _RULE_LUT, "a candidate mask needs LUT selection")
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    block = tl.program_id(1)
    row_ok = rows < num_rows
    rows64 = rows.to(tl.int64)
    pairs = tl.arange(0, BLOCK // 2)
    # One contiguous (vectorized) load of the block's values, split into even and odd elements.
    column = tl.max_contiguous(tl.multiple_of(block * BLOCK + tl.arange(0, BLOCK), BLOCK), BLOCK)
    x = tl.load(x_ptr + rows64[:, None] * stride_x + column[None, :], mask=row_ok[:, None], other=0.0)
    x_even, x_odd = tl.split(tl.reshape(x.to(tl.float32), (ROWS, BLOCK // 2, 2)))
    bits_even = x_even.to(tl.int32, bitcast=True)
    bits_odd = x_odd.to(tl.int32, bitcast=True)

    # Shared exponent from the exponent field of the block maximum (positive floats order as ints).
    amax = tl.maximum(tl.max(bits_even & 0x7FFFFFFF, axis=1), tl.max(bits_odd & 0x7FFFFFFF, axis=1))
    e = tl.maximum((amax >> _MANTISSA_BITS) - _FIELD_TO_E, -_EXP_BIAS)
    u_even, exact_even = _front_end(x_even, e[:, None])
    u_odd, exact_odd = _front_end(x_odd, e[:, None])

    if RULE == _RULE_MXFP4:
        index_even = tl.load(mx_round_ptr + exact_even.to(tl.int32) * _NUM_UCODES + u_even)
        index_odd = tl.load(mx_round_ptr + exact_odd.to(tl.int32) * _NUM_UCODES + u_odd)
    else:
        if RULE == _RULE_LUT:
            # Histogram form: cost = H @ ERR^T, H the (ROWS, 32) counts of each u in the block.
            # ERR = 128 ERR_hi + ERR_lo with both parts in int8, so two exact int8 dots.
            tl.static_assert(ROWS >= 16, "the LUT cost is a tl.dot: at least 16 rows per program")
            bins = tl.arange(0, _NUM_UCODES)
            hist = tl.reshape(_packed_counts(u_even) + _packed_counts(u_odd), (ROWS, _NUM_UCODES)).to(tl.int8)
            d = tl.arange(0, DIALECTS_PAD)
            err_lo = tl.load(err_ptr + d[None, :] * _NUM_UCODES + bins[:, None])  # (32, DIALECTS_PAD)
            err_hi = tl.load(err_ptr + (DIALECTS_PAD + d[None, :]) * _NUM_UCODES + bins[:, None])
            cost = tl.dot(hist, err_hi, out_dtype=tl.int32) * _ERR_SPLIT + tl.dot(hist, err_lo, out_dtype=tl.int32)
            valid = (d < NUM_DIALECTS)[None, :]
            if HAS_MASK:
                mask_row = mask_ptr + rows64 * stride_mask_row + block * stride_mask_block
                allowed = tl.load(mask_row[:, None] + d[None, :], mask=row_ok[:, None] & valid, other=1)
                valid = valid & (allowed != 0)
            cost = tl.where(valid, cost, _NO_CANDIDATE)
            dialect = tl.argmin(cost, axis=1, tie_break_left=True).to(tl.int32)  # ties: the lowest id
        else:
            umax = tl.maximum(tl.max(u_even, axis=1), tl.max(u_odd, axis=1))
            pair = PAIR_TOP - tl.minimum(tl.maximum(umax >> 1, PAIR_TOP - NUM_PAIRS + 1), PAIR_TOP)
            bounds = ranges_ptr + pair * 4  # [A lo, A hi, B lo, B hi]
            count_a = _range_count(u_even, u_odd, tl.load(bounds), tl.load(bounds + 1))
            count_b = _range_count(u_even, u_odd, tl.load(bounds + 2), tl.load(bounds + 3))
            dialect = 2 * pair + (count_b > count_a).to(tl.int32)
            dialect = tl.where(umax == 0, 0, dialect)
        idx_row = idx_ptr + dialect[:, None] * _NUM_UCODES
        index_even = tl.load(idx_row + u_even)
        index_odd = tl.load(idx_row + u_odd)
        tl.store(dialect_ptr + rows64 * stride_meta + block, dialect.to(tl.uint8), mask=row_ok)

    code_even = ((bits_even >> _FLOAT_SIGN_BIT) & 1) << _SIGN_SHIFT | index_even
    code_odd = ((bits_odd >> _FLOAT_SIGN_BIT) & 1) << _SIGN_SHIFT | index_odd
    packed = (code_even | (code_odd << 4)).to(tl.uint8)
    tl.store(codes_ptr + rows64[:, None] * stride_codes + block * (BLOCK // 2) + pairs[None, :], packed,
             mask=row_ok[:, None])  # fmt: skip
    tl.store(exponent_ptr + rows64 * stride_meta + block, (e + _EXP_BIAS).to(tl.uint8), mask=row_ok)


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
        grid = (triton.cdiv(rows, config.rows), nblocks)
        _quantize_rows_kernel[grid](
            x_ptr=x2d, stride_x=x2d.stride(0),
            codes_ptr=codes, stride_codes=codes.stride(0),
            exponent_ptr=exponent, dialect_ptr=dialect, stride_meta=exponent.stride(0),
            mask_ptr=mask_arg, stride_mask_row=mask_strides[0], stride_mask_block=mask_strides[1],
            err_ptr=tables.err_split, idx_ptr=tables.idx, ranges_ptr=tables.two_stage, mx_round_ptr=tables.mx_round,
            num_rows=rows,
            BLOCK=block, ROWS=config.rows, NUM_DIALECTS=tables.num_dialects, DIALECTS_PAD=tables.err_split.shape[1], RULE=int(rule),
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
