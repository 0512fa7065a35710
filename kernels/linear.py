"""The public W4A4 linear: activation quantization, GEMM and residual rows, and an nn.Module wrapper.

``w4a4_linear(x, weight)`` computes what the golden integer path computes (ALGORITHMS.md 1 and 2.3):

    Q1 = Q(x)                           activation rule of the weight's format (fb32: LUT selection,
                                        with the optional SeDA candidate mask; dialectfp4: two-stage;
                                        mxfp4: E2M1), both in the quantization kernel
    y  = Q1 @ W.T                       NUMERICS.md section 4 (exact mode) or the fast GEMM
    R  = x[S] - deq(Q1[S])              salient rows only, binary32
    y[S] = fl32(y[S] + Q(R) @ W.T)      R quantized with the same rule (and the same rows' mask)

In exact mode the result is bit-identical to ``golden.quantized_matmul`` on ``golden.quantize``'d
operands, plus that residual step.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from golden.blocks import InputError
from golden.formats import FormatSpec, Selection
from golden.matmul import weight_selection
from golden.quantize import QuantizedTensor, quantize

from .gemm import (
    OUT_DTYPES,
    GemmConfig,
    GemmMode,
    _check_epilogue,
    _check_operands,
    _gemm_torch,
    _resolve_config,
    epilogue_torch,
    gemm_into,
)
from .launch import validation_default
from .packed import PackedOperand
from .quantize_act import QuantizeConfig, quantize_activations, quantize_activations_torch
from .residual import ResidualConfig, residual_rows, residual_rows_torch
from .tables import kernel_format

__all__ = ["KernelConfig", "TritonW4A4Linear", "w4a4_linear", "w4a4_linear_op", "w4a4_linear_torch"]


@dataclass(frozen=True)
class KernelConfig:
    """Launch shapes of the three kernels a linear runs (``gemm=None``: the mode's production tiles)."""

    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    gemm: GemmConfig | None = None
    residual: ResidualConfig = field(default_factory=ResidualConfig)


def _gemm_into_torch(a, w, mode, config, out, *, bias=None, residual=None, slot=None) -> None:
    out.copy_(epilogue_torch(_gemm_torch(a, w, mode, config), bias, residual, slot, out.dtype))


@dataclass(frozen=True)
class _Ops:
    quantize: Callable
    gemm_into: Callable
    residual: Callable


_KERNELS = _Ops(quantize_activations, gemm_into, residual_rows)
_TWINS = _Ops(quantize_activations_torch, _gemm_into_torch, residual_rows_torch)


#: Packed copies of golden weights, per (id of the QuantizedTensor, device); an entry is dropped
#: when its QuantizedTensor is garbage-collected. Quantized weights are treated as immutable.
_PACKED_WEIGHTS: dict[tuple[int, torch.device], PackedOperand] = {}


def _weight_operand(weight, device: torch.device) -> PackedOperand:
    """The weight as a PackedOperand on ``device``; a golden weight is packed and moved once."""
    if isinstance(weight, PackedOperand):
        return weight
    if not isinstance(weight, QuantizedTensor):
        raise InputError(
            f"the weight must be a golden QuantizedTensor or a PackedOperand, got {type(weight).__name__}"
        )
    if weight.codes.dim() != 2:
        raise InputError(f"the weight must be 2-D (N x K), got shape {tuple(weight.shape)}")
    key = (id(weight), torch.device(device))
    packed = _PACKED_WEIGHTS.get(key)
    if packed is None:
        packed = PackedOperand.from_quantized(weight).to(device)
        _PACKED_WEIGHTS[key] = packed
        weakref.finalize(weight, _PACKED_WEIGHTS.pop, key, None)
    return packed


def _salient(rows, num_rows: int, device: torch.device) -> torch.Tensor:
    if not isinstance(rows, torch.Tensor) or rows.dtype != torch.int64 or rows.dim() != 1:
        raise InputError(
            "salient_rows must be a 1-D int64 tensor of row indices, "
            f"got {getattr(rows, 'dtype', type(rows).__name__)}"
        )
    return rows.to(device)


def _mask_rows(candidate_mask, lead, nblocks: int, rows: torch.Tensor):
    """The candidate mask of the salient rows, (len(rows), nblocks, D), or None."""
    if candidate_mask is None:
        return None
    dialects = candidate_mask.shape[-1]
    full = torch.broadcast_to(candidate_mask, (*lead, nblocks, dialects)).reshape(-1, nblocks, dialects)
    return full[rows.to(full.device)]


def _check_rows(rows: torch.Tensor, num_rows: int) -> None:
    """Range and uniqueness of the salient rows: reads them on the host (validation only)."""
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= num_rows):
        raise InputError(f"salient rows must lie in [0, {num_rows}), got {int(rows.min())}..{int(rows.max())}")
    if rows.unique().numel() != rows.numel():
        raise InputError("salient rows must be unique (each output row receives one residual)")


def _linear(
    ops: _Ops, x, weight, select, candidate_mask, salient_rows, mode, config: KernelConfig, bias, out_dtype,
    validate,
) -> torch.Tensor:  # fmt: skip
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise InputError(f"activations must be a tensor of shape (..., K), got {type(x).__name__}")
    validate = validation_default() if validate is None else validate
    w = _weight_operand(weight, x.device)
    if x.shape[-1] != w.unpadded_length:
        raise InputError(
            f"activations of shape {tuple(x.shape)} do not end in the weight's K={w.unpadded_length}"
        )
    mode = _check_operands(w, w, mode)
    gemm_config = _resolve_config(mode, config.gemm, w.block)
    _check_epilogue(w, bias, out_dtype)
    lead = x.shape[:-1]
    if w.length != x.shape[-1]:  # a zero-padded weight: pad the activations the same way (golden pad=True)
        x = torch.nn.functional.pad(x, (0, w.length - x.shape[-1]))
    a = ops.quantize(x, w.format, block=w.block, select=select, candidate_mask=candidate_mask,
                     config=config.quantize, validate=validate)  # fmt: skip
    out = torch.empty(a.rows, w.rows, dtype=out_dtype, device=a.device)
    residual = slot = None
    if salient_rows is not None:
        # The residual rows' GEMM runs first; the main GEMM's epilogue adds its rows through a
        # row -> slot map (-1: no residual), before the bias, as fl32(y + r) then fl32(+ bias).
        rows = _salient(salient_rows, a.rows, a.device)
        if validate:
            _check_rows(rows, a.rows)
        r = ops.residual(x, a, rows, config=config.residual, validate=False)
        mask = _mask_rows(candidate_mask, lead, a.num_blocks, rows)
        a2 = ops.quantize(r, w.format, block=w.block, select=select, candidate_mask=mask, config=config.quantize,
                          validate=validate)  # fmt: skip
        residual = torch.empty(a2.rows, w.rows, dtype=torch.float32, device=a.device)
        ops.gemm_into(a2, w, mode, gemm_config, residual)
        slot = torch.full((a.rows,), -1, dtype=torch.int32, device=a.device)
        slot[rows] = torch.arange(rows.numel(), dtype=torch.int32, device=a.device)
    ops.gemm_into(a, w, mode, gemm_config, out, bias=bias, residual=residual, slot=slot)
    return out.reshape(*lead, w.rows)


def w4a4_linear(
    x: torch.Tensor,
    weight: QuantizedTensor | PackedOperand,
    *,
    candidate_mask: torch.Tensor | None = None,
    salient_rows: torch.Tensor | None = None,
    mode: GemmMode | str = GemmMode.EXACT,
    select: Selection | str | None = None,
    config: KernelConfig = KernelConfig(),
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
    validate: bool | None = None,
) -> torch.Tensor:
    """``x @ W.T (+ bias)`` with both operands in W's 4-bit format, on the Triton kernels.

    Args:
        x: float16/bfloat16/float32 activations ``(..., K)``, finite, on the weight's CUDA device
            (any device under ``TRITON_INTERPRET=1``).
        weight: the quantized weight ``(N, K)`` in fb32, dialectfp4 or mxfp4 (a golden
            ``QuantizedTensor``, e.g. MSE-selected, or a ``PackedOperand``). A golden weight may be
            zero-padded (``pad=True``; ``x`` is then padded the same way); it is packed and copied to
            ``x``'s device on first use and cached while it lives, so it must not be modified.
        candidate_mask: optional boolean SeDA mask broadcastable to ``(..., K // block, D)``
            (LUT formats only); the residual of a salient row reuses its row's mask.
        salient_rows: optional int64 indices into the flattened rows ``x.reshape(-1, K)`` whose
            quantization residual is quantized again and added (activation decomposition).
        mode: ``"exact"`` (bit-identical to the golden integer path) or ``"fast"``.
        select: activation dialect selection, LUT or two-stage (dialectfp4); default the format's.
        config: launch shapes.
        bias: optional float32 ``(N,)`` on x's device, added in float32 in the GEMM epilogue.
        out_dtype: float32 (default), bfloat16 or float16; the epilogue rounds once to it.
        validate: host-side checks that synchronise with the device (NaN/infinite blocks, salient
            row range and uniqueness, candidate masks leaving a block empty); default off unless
            ``SDIALECT_KERNEL_CHECKS=1``. Without them the call never waits for the GPU, so it can
            be captured in a CUDA graph.

    Returns:
        ``(..., N)`` in ``out_dtype``.
    """
    return _linear(_KERNELS, x, weight, select, candidate_mask, salient_rows, mode, config, bias, out_dtype, validate)


def w4a4_linear_torch(
    x: torch.Tensor,
    weight: QuantizedTensor | PackedOperand,
    *,
    candidate_mask: torch.Tensor | None = None,
    salient_rows: torch.Tensor | None = None,
    mode: GemmMode | str = GemmMode.EXACT,
    select: Selection | str | None = None,
    config: KernelConfig = KernelConfig(),
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
    validate: bool | None = None,
) -> torch.Tensor:
    """Pure-PyTorch twin of ``w4a4_linear``, built from the twins of its three kernels."""
    return _linear(_TWINS, x, weight, select, candidate_mask, salient_rows, mode, config, bias, out_dtype, validate)


class TritonW4A4Linear(torch.nn.Module):
    """A linear layer whose weight is stored packed and whose forward runs ``w4a4_linear``.

    Buffers: ``codes`` uint8 ``(N, K // 2)``, ``exponent`` and (dialect formats) ``dialect`` uint8
    ``(N, K // block)``, optional float32 ``bias`` ``(N,)``. ``forward`` returns ``x.dtype``, like
    ``nn.Linear``: the GEMM epilogue adds the bias in float32 and rounds once to that dtype.
    """

    def __init__(
        self,
        weight: QuantizedTensor | PackedOperand,
        bias: torch.Tensor | None = None,
        *,
        mode: GemmMode | str = GemmMode.EXACT,
        config: KernelConfig = KernelConfig(),
    ) -> None:
        super().__init__()
        if isinstance(weight, QuantizedTensor):
            weight = PackedOperand.from_quantized(weight)
        packed = _weight_operand(weight, torch.device("cpu"))
        try:
            self.mode = GemmMode(mode)
        except ValueError:
            raise InputError(
                f"unknown GEMM mode {mode!r}; expected one of {', '.join(m.value for m in GemmMode)}"
            ) from None
        if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (packed.rows,)):
            raise InputError(
                f"bias must be a tensor of shape ({packed.rows},), got {tuple(getattr(bias, 'shape', ()))}"
            )
        self.format = packed.format
        self.block = packed.block
        self.logical_length = packed.logical_length
        self.in_features = packed.unpadded_length
        self.out_features = packed.rows
        self.config = config
        self.register_buffer("codes", packed.codes)
        self.register_buffer("exponent", packed.exponent)
        self.register_buffer("dialect", packed.dialect)
        self.register_buffer("block_scale", packed.block_scale)  # E4M3 scales only (else None)
        self.register_buffer("tensor_scale", packed.tensor_scale)
        self.register_buffer(
            "bias", None if bias is None else bias.detach().to(torch.float32).to(packed.device)
        )

    @classmethod
    def from_float(
        cls,
        linear: torch.nn.Linear,
        *,
        format: str | FormatSpec,
        block: int | None = None,
        mode: GemmMode | str = GemmMode.EXACT,
        config: KernelConfig = KernelConfig(),
    ) -> TritonW4A4Linear:
        """Quantize ``linear.weight`` with the format's weight rule (MSE selection for dialect formats)."""
        if not isinstance(linear, torch.nn.Linear):
            raise InputError(f"from_float takes a torch.nn.Linear, got {type(linear).__name__}")
        spec = kernel_format(format)
        weight = linear.weight.detach()
        # The golden quantizer runs on the CPU; the packed result moves back to the layer's device.
        q = quantize(weight.cpu(), spec, block=block, select=weight_selection(spec.name), pad=True)
        return cls(PackedOperand.from_quantized(q).to(weight.device), linear.bias, mode=mode, config=config)

    @property
    def weight_operand(self) -> PackedOperand:
        return PackedOperand(
            format=self.format,
            block=self.block,
            codes=self.codes,
            exponent=self.exponent,
            dialect=self.dialect,
            logical_length=self.logical_length,
            block_scale=self.block_scale,
            tensor_scale=self.tensor_scale,
        )

    def forward(
        self,
        x: torch.Tensor,
        *,
        candidate_mask: torch.Tensor | None = None,
        salient_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out_dtype = x.dtype if x.dtype in OUT_DTYPES else torch.float32
        if torch.compiler.is_compiling():  # one opaque operator for the graph (production shapes)
            return w4a4_linear_op(x, self.weight_operand, bias=self.bias, salient_rows=salient_rows,
                                  candidate_mask=candidate_mask, mode=self.mode, out_dtype=out_dtype)  # fmt: skip
        return w4a4_linear(
            x,
            self.weight_operand,
            candidate_mask=candidate_mask,
            salient_rows=salient_rows,
            mode=self.mode,
            config=self.config,
            bias=self.bias,
            out_dtype=out_dtype,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, format={self.format}, "
            f"block={self.block}, mode={self.mode.value}, bias={self.bias is not None}"
        )


# --------------------------------------------------------------------------------------------
# torch.compile: the linear as one opaque operator
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("sdialect::w4a4_linear", mutates_args=())
def _w4a4_linear_op(
    x: torch.Tensor,
    codes: torch.Tensor,
    exponent: torch.Tensor | None,
    dialect: torch.Tensor | None,
    block_scale: torch.Tensor | None,
    tensor_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    salient_rows: torch.Tensor | None,
    candidate_mask: torch.Tensor | None,
    format: str,
    block: int,
    logical_length: int,
    mode: str,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """``w4a4_linear`` on a packed weight's tensors, with the production launch shapes."""
    w = PackedOperand(format, block, codes, exponent, dialect, logical_length or None, block_scale, tensor_scale)
    return w4a4_linear(x, w, candidate_mask=candidate_mask, salient_rows=salient_rows, mode=mode, bias=bias,
                       out_dtype=out_dtype, validate=False)  # fmt: skip


@_w4a4_linear_op.register_fake
def _(x, codes, exponent, dialect, block_scale, tensor_scale, bias, salient_rows, candidate_mask, format, block,
      logical_length, mode, out_dtype):  # fmt: skip
    return x.new_empty((*x.shape[:-1], codes.shape[0]), dtype=out_dtype)


def w4a4_linear_op(x: torch.Tensor, weight: PackedOperand, *, bias=None, salient_rows=None, candidate_mask=None,
                   mode: GemmMode | str = GemmMode.EXACT, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """``w4a4_linear`` as the registered operator ``torch.ops.sdialect.w4a4_linear``: ``torch.compile``
    traces it as one node (no graph break); launch shapes are the production ones."""
    return _w4a4_linear_op(x, weight.codes, weight.exponent, weight.dialect, weight.block_scale, weight.tensor_scale,
                           bias, salient_rows, candidate_mask,
                           weight.format, weight.block, weight.logical_length or 0, GemmMode(mode).value,
                           out_dtype)  # fmt: skip
