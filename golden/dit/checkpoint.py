"""Save and load a quantized transformer (NUMERICS.md section 5): no float weights needed to load.

A model directory holds three files:

- ``quantized.safetensors``: every quantized linear's weight, packed (``golden.save_quantized``:
  two codes per byte, per-block exponent/dialect or scale bytes), keyed by the layer's qualified name;
- ``float.safetensors``: every remaining float tensor of ``model.state_dict()`` (embedders, norms,
  adaLN linears, final projection, the quantized linears' biases);
- ``config.json``: schema, the diffusers class and its config, the ``QuantConfig`` and the list of
  quantized layers.

``load_quantized_model`` builds the class from its config, installs the quantized layers from the
packed weights (the float weights of those layers are never read) and loads the float tensors with
strict name and shape checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..formats import FormatError
from ..packing import CheckpointError, load_quantized, save_quantized
from .architectures import ARCHITECTURES
from .config import QuantConfig
from .model import install, is_quantized, quantized_layers

__all__ = ["MODEL_SCHEMA", "load_quantized_model", "save_quantized_model"]

MODEL_SCHEMA = "semanticdialect.dit-model/1"
CONFIG_FILE = "config.json"
QUANTIZED_FILE = "quantized.safetensors"
FLOAT_FILE = "float.safetensors"


def save_quantized_model(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write a model quantized by ``quantize_`` to ``directory`` atomically (module docstring)."""
    if not is_quantized(model):
        raise FormatError("save_quantized_model needs a model quantized with quantize_")
    directory = Path(directory)
    layers = quantized_layers(model)
    config: QuantConfig = model._sdialect_state.config
    model_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()}
    meta = {
        "schema": MODEL_SCHEMA,
        "class_name": type(model).__name__,
        "model_config": model_config,
        "quant_config": config.to_json(),
        "quantized_layers": list(layers),
    }
    float_state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        save_quantized(tmp / QUANTIZED_FILE, {name: layer.weight_q for name, layer in layers.items()})
        save_file(float_state, tmp / FLOAT_FILE, metadata={"schema": MODEL_SCHEMA})
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
        if directory.exists():
            if not (directory / CONFIG_FILE).is_file():
                raise FormatError(
                    f"refusing to replace {directory}: it exists and is not a quantized-model directory"
                )
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def load_quantized_model(directory: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by ``save_quantized_model``; CheckpointError names what is wrong."""
    import diffusers

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"quantized model {directory} has no {CONFIG_FILE}")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"quantized model {directory}: {CONFIG_FILE} is not valid JSON ({err})"
        ) from None
    if not isinstance(meta, dict) or meta.get("schema") != MODEL_SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else None
        raise CheckpointError(f"quantized model {directory} has schema {found!r}, expected {MODEL_SCHEMA!r}")
    class_name = meta.get("class_name")
    if class_name not in ARCHITECTURES:
        raise CheckpointError(
            f"quantized model {directory} names class {class_name!r}; supported: {', '.join(ARCHITECTURES)}"
        )
    try:
        config = QuantConfig.from_json(meta["quant_config"])
        model = getattr(diffusers, class_name).from_config(meta["model_config"]).eval()
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} is malformed ({err})") from None
    weights, _ = load_quantized(directory / QUANTIZED_FILE)
    for name, q in weights.items():
        if q.format != config.format or q.block != config.block:
            raise CheckpointError(
                f"quantized model {directory}: layer {name!r} is {q.format}/{q.block}, the config says "
                f"{config.format}/{config.block}"
            )
    if sorted(weights) != sorted(meta.get("quantized_layers", [])):
        raise CheckpointError(
            f"quantized model {directory}: {QUANTIZED_FILE} does not hold the layers {CONFIG_FILE} lists"
        )
    try:
        install(model, config, weights=weights)
    except FormatError as err:
        raise CheckpointError(
            f"quantized model {directory} does not match its model config ({err})"
        ) from None
    try:
        float_state = load_file(directory / FLOAT_FILE)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"quantized model {directory}: {FLOAT_FILE} is missing or unreadable ({err})"
        ) from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(float_state)), sorted(set(float_state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"quantized model {directory}: {FLOAT_FILE} lacks {missing[:5]} "
            f"and has unexpected {unexpected[:5]}"
        )
    for key, value in float_state.items():
        if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
            raise CheckpointError(
                f"quantized model {directory}: float tensor {key!r} is {tuple(value.shape)} {value.dtype}, "
                f"expected {tuple(expected[key].shape)} {expected[key].dtype}"
            )
    with torch.no_grad():
        model.load_state_dict(float_state, strict=True)
    return model
