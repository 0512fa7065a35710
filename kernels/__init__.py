"""Triton GPU kernels: the SemanticDialect numerics on a GPU (shared/spec/KERNELS.md).

Each kernel has a pure-PyTorch twin of the same signature (``*_torch``); exact-mode results and all
quantized fields are bit-identical to the twins and to ``golden``. See ``kernels/README.md``.
"""

from .gemm import (
    GemmConfig,
    GemmMode,
    fast_mode_error_bound,
    w4a4_gemm,
    w4a4_gemm_scatter_add,
    w4a4_gemm_scatter_add_torch,
    w4a4_gemm_torch,
)
from .linear import KernelConfig, TritonW4A4Linear, w4a4_linear, w4a4_linear_torch
from .packed import PackedOperand
from .quantize_act import QuantizeConfig, quantize_activations, quantize_activations_torch
from .residual import ResidualConfig, residual_rows, residual_rows_torch

__all__ = [
    "GemmConfig",
    "GemmMode",
    "KernelConfig",
    "PackedOperand",
    "QuantizeConfig",
    "ResidualConfig",
    "TritonW4A4Linear",
    "fast_mode_error_bound",
    "quantize_activations",
    "quantize_activations_torch",
    "residual_rows",
    "residual_rows_torch",
    "w4a4_gemm",
    "w4a4_gemm_scatter_add",
    "w4a4_gemm_scatter_add_torch",
    "w4a4_gemm_torch",
    "w4a4_linear",
    "w4a4_linear_torch",
]
