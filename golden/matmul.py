"""The bit-exact quantized matmul (NUMERICS.md section 4).

For one activation block ``a`` and one weight block ``w`` covering the same K range:

    acc  = sum_i (-1)^(s_a,i ^ s_w,i) * h_a,i * h_w,i        (exact integer, |acc| <= B * 225 on
                                                              the half grid, B * 961 on the quarter)

h is in grid units of 2^-g (g = 1 half units, g = 2 quarter units; E2M1 is on the half grid).

E8M0 scales, i.e. dialect formats and MXFP4 (value = h * 2^(e - g)):

    term = fl32(acc * 2^(e_a + e_w - 2g))                    (one RNE rounding; exact unless the
                                                              exponent sum leaves binary32's range)

E4M3 scales, i.e. NVFP4 variants and E4M3 dialect formats (value = h * 2^-g * t * s), in this
order, every step in binary32:

    term = fl32( fl32(acc * 2^-2g * fl32(s_a * s_w)) * fl32(t_a * t_w) )
           (the inner product and the scale product are exact: at most 16 + 4 + 4 significand bits)

The output accumulates the terms of the K blocks in increasing K order in binary32 with
round-to-nearest-even, starting from +0.0: ``y = fl(fl(fl(0 + t_0) + t_1) + ...)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .formats import FormatError, Scale, Selection, get_format
from .quantize import QuantizedTensor, quantize

__all__ = ["accumulate_binary32", "block_terms", "quantized_linear", "quantized_matmul", "weight_selection"]


def _check_operands(a: QuantizedTensor, w: QuantizedTensor) -> None:
    if a.format != w.format or a.block != w.block:
        raise FormatError(
            f"matmul operands must share format and block; got {a.format}/{a.block} and {w.format}/{w.block}"
        )
    if w.codes.dim() != 2:
        raise FormatError(f"weight must be 2-D (N x K), got shape {tuple(w.shape)}")
    if a.codes.shape[-1] != w.codes.shape[-1] or a.length != w.length:
        raise FormatError(f"reduction lengths differ: activation K={a.length}, weight K={w.length}")


def block_terms(a: QuantizedTensor, w: QuantizedTensor) -> Iterator[torch.Tensor]:
    """Yield the binary32 term matrix ``(M, N)`` of each K block, in increasing K order.

    ``a`` is ``(..., K)`` (flattened to M rows), ``w`` is ``(N, K)``.
    """
    _check_operands(a, w)
    ha = a.signed_units().reshape(-1, a.num_blocks, a.block).to(torch.float32)
    hw = w.signed_units().to(torch.float32)
    e4m3 = a.spec.scale is Scale.E4M3
    g = a.spec.grid.shift
    if e4m3:
        sa = a.block_scale.view(torch.float8_e4m3fn).to(torch.float32).reshape(-1, a.num_blocks)
        sw = w.block_scale.view(torch.float8_e4m3fn).to(torch.float32)
        tensor_scale = (a.tensor_scale * w.tensor_scale).to(torch.float32)
    else:
        ea = a.unbiased_exponent().reshape(-1, a.num_blocks)
        ew = w.unbiased_exponent()
    for b in range(a.num_blocks):
        # Integer block dot products; float32 is exact here (|acc| <= 64 * 961 < 2**24).
        acc = ha[:, b, :] @ hw[:, b, :].T
        if e4m3:
            scale = sa[:, b, None] * sw[None, :, b]
            yield ((acc * 2.0 ** (-2 * g)) * scale) * tensor_scale
        else:
            # 2^(e_a + e_w - 2g) with the sum in [-258, 252] is exact in float64, as is the
            # product with acc; the cast to float32 is the single RNE rounding (subnormals, inf).
            power = torch.pow(2.0, (ea[:, b, None] + ew[None, :, b] - 2 * g).to(torch.float64))
            yield (acc.to(torch.float64) * power).to(torch.float32)


def accumulate_binary32(terms: Iterator[torch.Tensor]) -> torch.Tensor:
    """fl(fl(fl(+0.0 + t_0) + t_1) + ...) elementwise, in the order given."""
    y = None
    for term in terms:
        y = torch.zeros_like(term) + term if y is None else y + term
    return y


def quantized_matmul(a: QuantizedTensor, w: QuantizedTensor) -> torch.Tensor:
    """``y = A @ W.T`` on quantized operands, bit-exact per NUMERICS.md section 4.

    Returns float32 of shape ``(*a.shape[:-1], N)``.
    """
    y = accumulate_binary32(block_terms(a, w))
    return y.reshape(*a.shape[:-1], w.shape[0])


def weight_selection(format: str) -> Selection | None:
    """Weights use offline MSE selection in dialect formats; baselines have no selection."""
    return Selection.MSE if get_format(format).is_dialect else None


def quantized_linear(
    x: torch.Tensor, weight: torch.Tensor, format: str, *, block: int | None = None, pad: bool = False
) -> torch.Tensor:
    """Quantize activation rows with the format's activation rule and ``weight`` (N x K) with
    MSE selection (dialect formats), then run the bit-exact matmul."""
    a = quantize(x, format, block=block, pad=pad)
    w = quantize(weight, format, block=block, select=weight_selection(format), pad=pad)
    return quantized_matmul(a, w)
