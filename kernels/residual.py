"""Residual rows of activation decomposition (ALGORITHMS.md section 2.3).

For the salient rows ``S`` of an activation ``X`` already quantized as ``Q1``, the residual is
``R = X_S - deq(Q1_S)`` in binary32 (one rounding per element; ``deq`` is exact in binary32 and
keeps the sign of a negative-zero code). ``R`` is quantized again and its GEMM scatter-added into
the salient rows of the output (``gemm.w4a4_gemm_scatter_add``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from golden.blocks import InputError
from golden.formats import CODE_BITS, EXPONENT_BIAS

from .gemm import _e4m3_value, _pow2
from .launch import LAUNCH_OPTIONS, check_runnable
from .packed import PackedOperand
from .quantize_act import KERNEL_DTYPES
from golden.formats import Scale

from .tables import NUM_CODES, format_tables

__all__ = ["ResidualConfig", "residual_rows", "residual_rows_torch"]

_NUM_CODES = tl.constexpr(NUM_CODES)
_SIGN_BIT = tl.constexpr(1 << (CODE_BITS - 1))
#: value = h * 2^(E - _DEQ_OFFSET) for the biased exponent byte E (NUMERICS 2.1 step 6).
_DEQ_OFFSET = tl.constexpr(EXPONENT_BIAS + 1)


@dataclass(frozen=True)
class ResidualConfig:
    """Launch shape of the residual kernel: salient rows per program and warps."""

    rows: int = 16
    num_warps: int = 4

    def __post_init__(self) -> None:
        if self.rows < 1 or self.rows & (self.rows - 1):
            raise InputError(f"rows per program must be a power of two, got {self.rows}")


@triton.jit
def _dequantize(packed_nibble, dialect_table, exponent):
    """Exact binary32 value of codes; a set sign bit gives a negative value or -0.0."""
    half_units = tl.abs(tl.load(dialect_table + packed_nibble).to(tl.int32)).to(tl.float32)
    magnitude = half_units * _pow2(exponent - _DEQ_OFFSET)  # exact: at most 4 significant bits
    return tl.where((packed_nibble & _SIGN_BIT) != 0, -magnitude, magnitude)


@triton.jit
def _dequantize_e4m3(packed_nibble, dialect_table, step, GRID_SHIFT: tl.constexpr):
    """binary32 value fl32(fl32(h 2^-g) * step) of codes (E4M3 scales); a set sign bit: -value or -0.0."""
    units = tl.abs(tl.load(dialect_table + packed_nibble).to(tl.int32)).to(tl.float32)
    magnitude = (units * (2.0 ** (-GRID_SHIFT))) * step
    return tl.where((packed_nibble & _SIGN_BIT) != 0, -magnitude, magnitude)


@triton.jit
def _residual_rows_kernel(
    x_ptr, stride_x, rows_ptr,
    codes_ptr, exponent_ptr, dialect_ptr, stride_codes, stride_meta,
    decode_ptr, out_ptr, stride_out,
    num_salient,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DIALECT: tl.constexpr,
    tensor_scale_ptr=None,
    E4M3: tl.constexpr = False,
    GRID_SHIFT: tl.constexpr = 1,
):  # fmt: skip
    """out[i] = x[rows[i]] - deq(Q1[rows[i]]) for ROWS salient rows x one block.

    E4M3 (``exponent_ptr`` holds the block scale bytes): ``deq = fl32(fl32(h 2^-g) fl32(t s))``
    (NUMERICS 8.3; ``h 2^-g`` is exact, so one rounding), a set sign bit giving -value or -0.0.
    """
    tl.static_assert(BLOCK % 2 == 0, "blocks hold whole bytes of packed codes")
    salient = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    block = tl.program_id(1)
    ok = salient < num_salient
    source = tl.load(rows_ptr + salient, mask=ok, other=0)
    pairs = tl.arange(0, BLOCK // 2)
    byte = block * (BLOCK // 2) + pairs[None, :]
    packed = tl.load(codes_ptr + source[:, None] * stride_codes + byte, mask=ok[:, None], other=0)
    packed = packed.to(tl.int32)
    exponent = tl.load(exponent_ptr + source * stride_meta + block, mask=ok, other=0).to(tl.int32)[:, None]
    if HAS_DIALECT:
        dialect = tl.load(dialect_ptr + source * stride_meta + block, mask=ok, other=0).to(tl.int32)
        table = decode_ptr + dialect[:, None] * _NUM_CODES
    else:
        table = decode_ptr
    x_row = x_ptr + source[:, None] * stride_x + block * BLOCK + 2 * pairs[None, :]
    x_even = tl.load(x_row, mask=ok[:, None], other=0.0).to(tl.float32)
    x_odd = tl.load(x_row + 1, mask=ok[:, None], other=0.0).to(tl.float32)
    if E4M3:
        step = tl.load(tensor_scale_ptr) * _e4m3_value(exponent)  # fl32(t s), per row and block
        r_even = x_even - _dequantize_e4m3(packed & 0xF, table, step, GRID_SHIFT)
        r_odd = x_odd - _dequantize_e4m3(packed >> 4, table, step, GRID_SHIFT)
    else:
        r_even = x_even - _dequantize(packed & 0xF, table, exponent)
        r_odd = x_odd - _dequantize(packed >> 4, table, exponent)
    out_row = out_ptr + salient.to(tl.int64)[:, None] * stride_out + block * BLOCK + 2 * pairs[None, :]
    tl.store(out_row, r_even, mask=ok[:, None])
    tl.store(out_row + 1, r_odd, mask=ok[:, None])


def _check(x: torch.Tensor, q1: PackedOperand, rows: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Validate; returns x as (M, K)."""
    if not isinstance(x, torch.Tensor) or x.dtype not in KERNEL_DTYPES:
        raise InputError(
            "activations must be a float16/bfloat16/float32 tensor, "
            f"got {getattr(x, 'dtype', type(x).__name__)}"
        )
    if not isinstance(q1, PackedOperand):
        raise InputError(f"the quantized activations must be a PackedOperand, got {type(q1).__name__}")
    x2d = x.detach().reshape(-1, x.shape[-1]) if x.dim() else x
    if x2d.dim() != 2 or tuple(x2d.shape) != (q1.rows, q1.length):
        raise InputError(
            f"activations of shape {tuple(x.shape)} do not match the quantized rows ({q1.rows}, {q1.length})"
        )
    if x2d.device != q1.device:
        raise InputError(f"the activations are on {x2d.device} but the quantized rows are on {q1.device}")
    if not isinstance(rows, torch.Tensor) or rows.dtype != torch.int64 or rows.dim() != 1:
        raise InputError(
            f"salient rows must be a 1-D int64 tensor, got {getattr(rows, 'dtype', type(rows).__name__)}"
        )
    if rows.device != q1.device:
        raise InputError(f"salient rows are on {rows.device} but the activations are on {q1.device}")
    if validate and rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= q1.rows):
        raise InputError(f"salient rows must lie in [0, {q1.rows}), got {int(rows.min())}..{int(rows.max())}")
    return x2d


def residual_rows(
    x: torch.Tensor,
    q1: PackedOperand,
    rows: torch.Tensor,
    *,
    config: ResidualConfig = ResidualConfig(),
    validate: bool = True,
) -> torch.Tensor:
    """float32 ``(len(rows), K)``: ``x[rows] - deq(q1[rows])`` for ``x`` ``(..., K)`` quantized as ``q1``.

    ``rows`` index the flattened rows of ``x`` (int64, same device). ``validate`` checks their range,
    which reads them on the host (a device synchronisation).
    """
    x2d = _check(x, q1, rows, validate)
    check_runnable("activations", x2d)
    if x2d.stride(1) != 1:
        x2d = x2d.contiguous()
    out = torch.empty(rows.numel(), q1.length, dtype=torch.float32, device=q1.device)
    if rows.numel():
        tables = format_tables(q1.format, q1.device)
        e4m3 = q1.spec.scale is Scale.E4M3
        scale = q1.block_scale if e4m3 else q1.exponent  # per-block scale bytes
        _residual_rows_kernel[(triton.cdiv(rows.numel(), config.rows), q1.num_blocks)](
            x_ptr=x2d, stride_x=x2d.stride(0), rows_ptr=rows,
            codes_ptr=q1.codes, exponent_ptr=scale,
            dialect_ptr=scale if q1.dialect is None else q1.dialect,
            stride_codes=q1.codes.stride(0), stride_meta=scale.stride(0),
            decode_ptr=tables.decode, out_ptr=out, stride_out=out.stride(0),
            num_salient=rows.numel(), BLOCK=q1.block, ROWS=config.rows, HAS_DIALECT=q1.dialect is not None,
            tensor_scale_ptr=q1.tensor_scale if e4m3 else out, E4M3=e4m3, GRID_SHIFT=tables.grid_shift,
            num_warps=config.num_warps, **LAUNCH_OPTIONS,
        )  # fmt: skip
    return out


def residual_rows_torch(
    x: torch.Tensor,
    q1: PackedOperand,
    rows: torch.Tensor,
    *,
    config: ResidualConfig = ResidualConfig(),
    validate: bool = True,
) -> torch.Tensor:
    """Pure-PyTorch twin of ``residual_rows`` (golden dequantization); ``config`` is ignored."""
    x2d = _check(x, q1, rows, validate)
    return x2d[rows].to(torch.float32) - q1.select_rows(rows).to_quantized().dequantize()
