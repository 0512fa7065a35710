"""SemanticDialect on diffusers video transformers (shared/spec/ALGORITHMS.md sections 1-4).

Public API (stable; documented in golden/dit/README.md)::

    from golden.dit import quantize_, QuantConfig, DecompositionConfig, SedaConfig, Execution, Backend
    report = quantize_(transformer, QuantConfig(format="fb32", decomposition=DecompositionConfig(),
                                                seda=SedaConfig()))
"""

from .architectures import ARCHITECTURES, Architecture, architecture_of
from .config import Backend, DecompositionConfig, Execution, QuantConfig, QuantReport, SedaConfig
from .linear import QuantizedLinear, TokenRole, decomposed_matmul, quantize_activation, quantize_weight
from .model import is_quantized, quantize_, quantized_layers, reset_schedule

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Backend",
    "DecompositionConfig",
    "Execution",
    "QuantConfig",
    "QuantReport",
    "QuantizedLinear",
    "SedaConfig",
    "TokenRole",
    "architecture_of",
    "decomposed_matmul",
    "is_quantized",
    "quantize_",
    "quantize_activation",
    "quantize_weight",
    "quantized_layers",
    "reset_schedule",
]
