"""SemanticDialect on diffusers video transformers (docs/ALGORITHMS.md sections 1-4).

Public API (stable; documented in golden/dit/README.md)::

    from golden.dit import quantize_, QuantConfig, DecompositionConfig, SedaConfig, Execution, Backend
    report = quantize_(transformer, QuantConfig(format="fb32", decomposition=DecompositionConfig(),
                                                seda=SedaConfig()))

Names are imported lazily (PEP 562), so ``import golden.dit.cli_bench`` (the ``sdialect`` command
table) does not pull in diffusers.
"""

from __future__ import annotations

import importlib

#: public name -> submodule that defines it
_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "Architecture": "architectures",
    "architecture_of": "architectures",
    "Backend": "config",
    "DecompositionConfig": "config",
    "Execution": "config",
    "QuantConfig": "config",
    "QuantReport": "config",
    "SedaConfig": "config",
    "QuantizedLinear": "linear",
    "TokenRole": "linear",
    "ActivationPlan": "linear",
    "DecomposedActivation": "linear",
    "decomposed_matmul": "linear",
    "fast_dequantize": "linear",
    "quantize_activation": "linear",
    "quantize_weight": "linear",
    "is_quantized": "model",
    "quantize_": "model",
    "quantized_layers": "model",
    "reset_schedule": "model",
    "LayerStats": "stats",
    "collect_stats": "stats",
    "CAPTURE_SCHEMA": "capturing",
    "Capture": "capturing",
    "CaptureConfig": "capturing",
    "CaptureRecord": "capturing",
    "capture": "capturing",
    "load_capture": "capturing",
    "replay": "capturing",
    "replay_operands": "capturing",
    "MODEL_SCHEMA": "checkpoint",
    "load_quantized_model": "checkpoint",
    "save_quantized_model": "checkpoint",
    "TINY_ARCHITECTURES": "tiny",
    "tiny_inputs": "tiny",
    "tiny_transformer": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'golden.dit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
