"""The packed 2-D operand the kernels read and write (NUMERICS.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from golden.blocks import InputError
from golden.formats import FormatError, FormatSpec, Scale
from golden.packing import pack_codes, unpack_codes
from golden.quantize import QuantizedTensor

from .tables import kernel_format

__all__ = ["PackedOperand"]


@dataclass(frozen=True)
class PackedOperand:
    """R rows of K values in a dialect format or MXFP4, codes packed two per byte.

    ``codes``: uint8 ``(R, K // 2)``, element ``2j`` in bits 3..0 and ``2j + 1`` in bits 7..4.
    ``exponent``: uint8 ``(R, K // block)``, the biased shared exponent ``E = e + 127`` (E8M0
    scales; ``None`` for an E4M3 scale).
    ``dialect``: uint8 ``(R, K // block)`` dialect ids (dialect formats), ``None`` for MXFP4.
    ``block_scale`` / ``tensor_scale`` (E4M3 scales only, else ``None``): uint8 ``(R, K // block)``
    E4M3 bits and the float32 0-d tensor scale ``t`` of the whole operand (NUMERICS 8.3).
    All live on the same device and are contiguous. ``logical_length`` is the row length
    before zero padding to whole blocks (``golden.quantize(..., pad=True)``); ``None`` means K.
    """

    format: str
    block: int
    codes: torch.Tensor
    exponent: torch.Tensor | None
    dialect: torch.Tensor | None
    logical_length: int | None = None
    block_scale: torch.Tensor | None = None
    tensor_scale: torch.Tensor | None = None

    def __post_init__(self) -> None:
        spec = kernel_format(self.format)
        spec.check_block(self.block)
        if self.codes.dim() != 2 or self.codes.dtype != torch.uint8:
            raise InputError(
                f"packed codes must be a 2-D uint8 tensor, "
                f"got {self.codes.dtype} of shape {tuple(self.codes.shape)}"
            )
        rows, half = self.codes.shape
        if (2 * half) % self.block:
            raise InputError(f"packed codes of {2 * half} values per row do not fill blocks of {self.block}")
        expected = (rows, 2 * half // self.block)
        fields = {"exponent": self.exponent, "dialect": self.dialect, "block_scale": self.block_scale}
        if spec.is_dialect != (self.dialect is not None):
            need = "needs" if spec.is_dialect else "has no"
            raise FormatError(f"format {spec.name!r} {need} per-block dialect ids")
        e4m3 = spec.scale is Scale.E4M3
        if (self.exponent is None) != e4m3 or (self.block_scale is None) != (not e4m3) or (
            (self.tensor_scale is None) != (not e4m3)
        ):
            need = "block_scale and tensor_scale, no exponent" if e4m3 else "an exponent, no block or tensor scale"
            raise FormatError(f"format {spec.name!r} ({spec.scale.value} scale) needs {need}")
        if e4m3 and (
            not isinstance(self.tensor_scale, torch.Tensor) or self.tensor_scale.dtype != torch.float32
            or self.tensor_scale.dim() != 0 or self.tensor_scale.device != self.codes.device
        ):  # fmt: skip
            raise InputError(f"tensor_scale must be a float32 0-d tensor on {self.codes.device}")
        for name, value in fields.items():
            if value is None:
                continue
            if value.dtype != torch.uint8 or tuple(value.shape) != expected:
                raise InputError(
                    f"{name} must be uint8 of shape {expected}, "
                    f"got {value.dtype} of shape {tuple(value.shape)}"
                )
            if value.device != self.codes.device:
                raise InputError(f"{name} is on {value.device} but the codes are on {self.codes.device}")
            if not value.is_contiguous():
                raise InputError(f"{name} must be contiguous")
        if not self.codes.is_contiguous():
            raise InputError("packed codes must be contiguous")
        if (
            self.logical_length is not None
            and not self.length - self.block < self.logical_length <= self.length
        ):
            raise InputError(
                f"logical length {self.logical_length} does not zero-pad to {self.length} values "
                f"in blocks of {self.block}"
            )

    @property
    def spec(self) -> FormatSpec:
        return kernel_format(self.format)

    @property
    def rows(self) -> int:
        return self.codes.shape[0]

    @property
    def length(self) -> int:
        """K, the number of values per row."""
        return 2 * self.codes.shape[1]

    @property
    def unpadded_length(self) -> int:
        """K before zero padding: the length of the rows the operand stands for."""
        return self.length if self.logical_length is None else self.logical_length

    @property
    def num_blocks(self) -> int:
        return self.length // self.block

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @classmethod
    def from_quantized(cls, q: QuantizedTensor) -> PackedOperand:
        """Pack a golden ``QuantizedTensor`` of shape ``(..., K)``, flattening the leading axes."""
        if not isinstance(q, QuantizedTensor):
            raise InputError(f"expected a golden QuantizedTensor, got {type(q).__name__}")
        spec = kernel_format(q.format)
        nblocks = q.num_blocks
        width = q.codes.shape[-1]
        return cls(
            format=spec.name,
            block=q.block,
            codes=pack_codes(q.codes.reshape(-1, width)).contiguous(),
            exponent=None if q.exponent is None else q.exponent.reshape(-1, nblocks).contiguous(),
            dialect=None if q.dialect is None else q.dialect.reshape(-1, nblocks).contiguous(),
            logical_length=None if q.length == width else q.length,
            block_scale=None if q.block_scale is None else q.block_scale.reshape(-1, nblocks).contiguous(),
            tensor_scale=None if q.tensor_scale is None else q.tensor_scale.to(torch.float32).reshape(()),
        )

    def to(self, device: torch.device | str) -> PackedOperand:
        """The same operand on ``device``."""
        return PackedOperand(
            format=self.format,
            block=self.block,
            codes=self.codes.to(device),
            exponent=_optional(self.exponent, lambda v: v.to(device)),
            dialect=_optional(self.dialect, lambda v: v.to(device)),
            logical_length=self.logical_length,
            block_scale=_optional(self.block_scale, lambda v: v.to(device)),
            tensor_scale=_optional(self.tensor_scale, lambda v: v.to(device)),
        )

    def to_quantized(self) -> QuantizedTensor:
        """The same values as a golden ``QuantizedTensor`` of shape ``(R, K)`` (codes unpacked)."""
        return QuantizedTensor(
            format=self.format,
            block=self.block,
            length=self.unpadded_length,
            codes=unpack_codes(self.codes),
            exponent=self.exponent,
            dialect=self.dialect,
            block_scale=self.block_scale,
            tensor_scale=self.tensor_scale,
        )

    def select_rows(self, rows: torch.Tensor) -> PackedOperand:
        """The operand restricted to ``rows`` (int64 indices), in that order."""
        return PackedOperand(
            format=self.format,
            block=self.block,
            codes=self.codes[rows].contiguous(),
            exponent=_optional(self.exponent, lambda v: v[rows].contiguous()),
            dialect=_optional(self.dialect, lambda v: v[rows].contiguous()),
            logical_length=self.logical_length,
            block_scale=_optional(self.block_scale, lambda v: v[rows].contiguous()),
            tensor_scale=self.tensor_scale,  # the operand's one tensor scale, shared by its rows
        )


def _optional(value, convert):
    return None if value is None else convert(value)
