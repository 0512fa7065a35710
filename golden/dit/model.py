"""``quantize_``: one call that turns a diffusers video transformer into a W4A4 model (ALGORITHMS.md 1).

In place, torchao-style: every ``nn.Linear`` inside the transformer blocks becomes a
``QuantizedLinear`` (weights quantized once here); embedders, adaLN modulation linears, the final
projection and norms stay as they are. With decomposition or attention-product quantization the
blocks' self-attention gets a saliency processor, and a forward pre-hook on the transformer tracks
the denoising step from the ``timestep`` argument (``schedule.py``).
"""

from __future__ import annotations

import functools
import inspect
import time

import torch
from torch import nn

from ..formats import FormatError, get_format
from ..quantize import QuantizedTensor
from .architectures import Architecture, architecture_of
from .config import QuantConfig, QuantReport
from .linear import QuantizedLinear, TokenRole
from .memory import PeakMemory
from .schedule import ModelState

__all__ = ["is_quantized", "quantize_", "quantized_layers", "reset_schedule"]

_STATE_ATTR = "_sdialect_state"
_HOOK_ATTR = "_sdialect_hook"


def is_quantized(model: nn.Module) -> bool:
    return getattr(model, _STATE_ATTR, None) is not None


def quantized_layers(model: nn.Module) -> dict[str, QuantizedLinear]:
    """Qualified name -> ``QuantizedLinear`` of every quantized layer, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QuantizedLinear)}


def reset_schedule(model: nn.Module) -> None:
    """Start a new generation: the next forward call is denoising step 0 (saliency, groups and
    families are recomputed). Needed only when two generations reuse the same first timestep."""
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        raise FormatError("reset_schedule needs a model quantized with quantize_")
    state.reset()
    for layer in quantized_layers(model).values():
        layer.reset_state()


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def install(
    model: nn.Module, config: QuantConfig, *, weights: dict[str, QuantizedTensor] | None = None
) -> tuple[Architecture, list[str], list[str]]:
    """Replace the block linears of ``model`` (quantizing their float weights, or taking ``weights``
    by qualified name when loading a checkpoint) and attach the schedule state and processors."""
    if is_quantized(model):
        raise FormatError(f"{type(model).__name__} is already quantized; quantize a fresh float model")
    arch = architecture_of(model)
    state = ModelState(config)
    quantized: list[str] = []
    in_blocks: set[str] = set()
    for prefix, block in arch.blocks(model):
        block_state = state.block(prefix)
        for rel, linear in list(block.named_modules()):
            if not isinstance(linear, nn.Linear):
                continue
            name = f"{prefix}.{rel}"
            in_blocks.add(name)
            if arch.keeps_high_precision(rel):
                continue
            role = TokenRole.TEXT if arch.is_text_linear(rel) else TokenRole.VIDEO
            if weights is None:
                layer = QuantizedLinear.from_linear(
                    linear, name=name, config=config, role=role, block_state=block_state
                )
            else:
                if name not in weights:
                    raise FormatError(f"no quantized weight for layer {name!r}")
                if tuple(weights[name].shape) != tuple(linear.weight.shape):
                    raise FormatError(
                        f"layer {name!r} has a quantized weight of shape {weights[name].shape}, the model's "
                        f"linear needs {tuple(linear.weight.shape)}"
                    )
                layer = QuantizedLinear(
                    name=name, weight_q=weights[name], bias=linear.bias, config=config, role=role,
                    block_state=block_state,
                )  # fmt: skip
            _set_submodule(block, rel, layer)
            quantized.append(name)
        if config.quantize_attention_products and not arch.attention_products:
            raise FormatError(f"quantize_attention_products is not supported for {arch.class_name}")
        if config.needs_saliency or config.quantize_attention_products:
            attention = getattr(block, arch.self_attention)
            if hasattr(attention, "set_processor"):
                attention.set_processor(arch.processor(block_state))
            else:  # MochiAttention keeps a plain processor attribute
                attention.processor = arch.processor(block_state)
    if weights is not None and set(weights) != set(quantized):
        extra = sorted(set(weights) - set(quantized))
        raise FormatError(f"quantized weights name layers the model does not quantize: {extra}")
    kept = [
        n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not isinstance(m, QuantizedLinear)
    ]

    signature = inspect.signature(model.forward)

    def track_step(module, args, kwargs):
        bound = signature.bind_partial(*args, **kwargs).arguments
        state.begin_call(bound.get("timestep"), arch.grid(module, bound), arch.video_offset(bound))

    setattr(model, _STATE_ATTR, state)
    setattr(model, _HOOK_ATTR, model.register_forward_pre_hook(track_step, with_kwargs=True))
    # diffusers' save_pretrained would write the quantized buffers of state_dict() in a checkpoint
    # that from_pretrained loads into float linears: refuse it (an instance attribute, so
    # pipe.save_pretrained(), which calls it per component, refuses too).
    model.save_pretrained = functools.partial(_refuse_save_pretrained, type(model).__name__)
    return arch, quantized, kept


def _refuse_save_pretrained(class_name: str, *args, **kwargs):
    raise FormatError(
        f"save_pretrained cannot write a quantized {class_name} (diffusers' format has no place for its "
        "packed weights); use golden.dit.save_quantized_model(model, directory) and load_quantized_model"
    )


def quantize_(model: nn.Module, config: QuantConfig | None = None) -> QuantReport:
    """Quantize a supported diffusers video transformer in place; returns a ``QuantReport``.

    Args:
        model: a ``HunyuanVideoTransformer3DModel``, ``WanTransformer3DModel``,
            ``SkyReelsV2Transformer3DModel``, ``LTXVideoTransformer3DModel``,
            ``CogVideoXTransformer3DModel`` or ``MochiTransformer3DModel``
            (``golden.dit.ARCHITECTURES``), float, not yet quantized.
        config: ``QuantConfig`` (default: fb32, fake-quant, no decomposition).
    """
    config = QuantConfig() if config is None else config
    if not isinstance(config, QuantConfig):
        raise FormatError(f"quantize_ expects a QuantConfig, got {type(config).__name__}")
    device = next((p.device for p in model.parameters() if p.is_cuda), torch.device("cpu"))
    start = time.perf_counter()
    with torch.no_grad(), PeakMemory(device) as peak:
        arch, quantized, kept = install(model, config)
    wall = time.perf_counter() - start
    spec = get_format(config.format)
    layers = quantized_layers(model)
    bits = sum(
        int(round(layer.weight_q.codes.numel() * spec.bits_per_element(config.block)))
        for layer in layers.values()
    )
    return QuantReport(
        config=config, architecture=arch.name, quantized_layers=tuple(quantized), kept_layers=tuple(kept),
        wall_time_s=wall, peak_memory_bytes=peak.bytes, weight_bits=bits,
    )  # fmt: skip
