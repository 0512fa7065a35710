"""Triton GPU kernels: the SemanticDialect numerics on a GPU (kernels/README.md).

Each kernel has a pure-PyTorch twin of the same signature (``*_torch``); exact-mode results and all
quantized fields are bit-identical to the twins and to ``golden``. See ``kernels/README.md``.

The public names load lazily, so ``import kernels.cli_bench`` (the command table) does not import
triton; ``TRITON_INTERPRET=1`` must be set before the first kernel module is imported.
"""

import importlib

#: public name -> defining submodule
_EXPORTS = {
    "GemmConfig": "gemm",
    "GemmMode": "gemm",
    "fast_mode_error_bound": "gemm",
    "w4a4_gemm": "gemm",
    "tuned_config": "gemm",
    "w4a4_gemm_scatter_add": "gemm",
    "w4a4_gemm_scatter_add_torch": "gemm",
    "w4a4_gemm_torch": "gemm",
    "KernelConfig": "linear",
    "TritonW4A4Linear": "linear",
    "w4a4_linear": "linear",
    "w4a4_linear_op": "linear",
    "w4a4_linear_torch": "linear",
    "PackedOperand": "packed",
    "QuantizeConfig": "quantize_act",
    "quantize_activations": "quantize_act",
    "quantize_activations_torch": "quantize_act",
    "ResidualConfig": "residual",
    "residual_rows": "residual",
    "residual_rows_torch": "residual",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
